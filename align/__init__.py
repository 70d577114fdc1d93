"""align: post-training alignment workbench (SFT -> DPO -> MT-Bench), training side."""

__version__ = "0.1.0"
