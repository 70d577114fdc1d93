"""Model growth (bert2BERT): a larger checkpoint from a smaller one, or a fresh random init.

    model.py    shapes, the grown state dict, `grow_model`
    width.py    FPI / AKI width maps, the RMSNorm fix, zero-sum noise
    depth.py    new layers: stack, interpolate, zero
    scratch.py  `align init`: random weights in a checkpoint's shape
    command.py  `align grow`
"""

from align.grow.model import grow_model

__all__ = ["grow_model"]
