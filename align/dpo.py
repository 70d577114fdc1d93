"""Alias of `align dpo`, so `python -m align.dpo` and `accelerate launch -m align.dpo` keep working."""

import sys

from align.train.dpo import main

if __name__ == "__main__":
    sys.exit(main())
