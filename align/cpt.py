"""Alias of `align cpt`, so `python -m align.cpt` and `accelerate launch -m align.cpt` work."""

import sys

from align.train.cpt import main

if __name__ == "__main__":
    sys.exit(main())
