"""Entry point for `python app.py`, `gradio app.py` (reload mode) and Hugging Face Spaces."""

from app.try_concept import build_demo

demo = build_demo()

if __name__ == "__main__":
    demo.launch()
