"""Alias of `align sft`, so `python -m align.sft` and `accelerate launch -m align.sft` keep working."""

import sys

from align.train.sft import main

if __name__ == "__main__":
    sys.exit(main())
