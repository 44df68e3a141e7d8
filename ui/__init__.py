"""The browser chat (Gradio) over the rag library; `rag chat` starts it (installed as the package rag_ui)."""
