"""`python -m maskdepth ...` (also what `torchrun -m maskdepth train ...` runs)."""

import sys

from maskdepth.cli import main

if __name__ == "__main__":
    sys.exit(main())
