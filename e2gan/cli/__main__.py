"""`python -m e2gan.cli ...`: what `torchrun` and `accelerate launch -m e2gan.cli pairs` run."""

import sys

from e2gan.cli import main

sys.exit(main())
