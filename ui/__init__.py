"""The browser chat (Gradio) over the rag library; `python ui/app.py --index-dir DIR` starts it."""
