import sys

from e2gan.cli import main

sys.exit(main())
