"""Entry point for `python app.py`, `gradio app.py` (reload mode) and Hugging Face Spaces.

Building `demo` at import is what `gradio app.py` and Spaces expect; launching happens only when
run as a script.
"""

import app.gpu  # noqa: F401  first: on a ZeroGPU Space it imports `spaces` before torch touches CUDA
from app.studio import build_demo, launch_options

demo = build_demo()

if __name__ == "__main__":
    demo.launch(**launch_options())
