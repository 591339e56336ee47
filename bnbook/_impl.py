"""Which implementation to use: the book's from-scratch ``bnbook`` or ``torch`` (the oracle)."""

from __future__ import annotations

from types import ModuleType

from bnbook._validate import check_choice

__all__ = ["IMPLS", "layers_module", "functional_module"]

#: Accepted values of every ``impl=`` argument.
IMPLS = ("bnbook", "torch")


def layers_module(impl: str) -> ModuleType:
    """``bnbook.layers`` or ``torch.nn``."""
    check_choice("impl", impl, IMPLS)
    if impl == "torch":
        from torch import nn

        return nn
    from bnbook import layers

    return layers


def functional_module(impl: str) -> ModuleType:
    """``bnbook.functional`` or ``torch.nn.functional``."""
    check_choice("impl", impl, IMPLS)
    if impl == "torch":
        from torch.nn import functional

        return functional
    from bnbook import functional

    return functional
