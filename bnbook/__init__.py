"""bnbook: the helper library of the batch normalization textbook.

Importing ``bnbook`` changes nothing global (no seeding, no plotting style, no
downloads).  Submodules are imported explicitly, e.g. ``from bnbook import
layers`` or ``from bnbook.data import load``; heavy optional dependencies
(torchvision, ipywidgets) are only imported by the modules that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
