"""The Gradio front end: thin UI layers over plain functions of `e2gan` (which never imports gradio)."""
