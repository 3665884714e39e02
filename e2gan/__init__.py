"""E2GAN: distil a diffusion image editor into a tiny real-time GAN, one LoRA concept at a time.

The package is the engine; the studio (`app/`) and the CLI (`e2gan.cli`) are thin layers over it.
Importing it does no work and never imports gradio.
"""

__version__ = "0.1.0"
