"""The prompt templates (string.Template files), installed with the library as rag.prompts."""
