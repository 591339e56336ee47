"""Which implementation to use: bnbook's from-scratch layers and ops, or their ``torch.nn`` twins.

The one place that maps an ``impl=`` argument to a module, so that every ``impl="torch"``
switch in the book validates it the same way and names the same choices.

>>> layers_module("torch").BatchNorm1d
<class 'torch.nn.modules.batchnorm.BatchNorm1d'>
>>> functional_module("bnbook").batch_norm.__module__
'bnbook.functional.batchnorm'
"""

from __future__ import annotations

from types import ModuleType

from bnbook._validate import check_choice

__all__ = ["IMPLS", "check_impl", "functional_module", "layers_module"]

#: Accepted values of ``impl``: bnbook's from-scratch code, or PyTorch's.
IMPLS = ("bnbook", "torch")


def check_impl(impl) -> str:
    """Return ``impl`` if it is one of ``IMPLS``, else a ValueError listing them."""
    return check_choice("impl", impl, IMPLS)


def layers_module(impl: str) -> ModuleType:
    """``bnbook.layers`` for ``impl="bnbook"``, ``torch.nn`` for ``impl="torch"``.

    Both hold classes of the same names and arguments (``BatchNorm2d``, ``LayerNorm``, ...).
    """
    if check_impl(impl) == "torch":
        from torch import nn

        return nn
    from bnbook import layers  # lazily: bnbook.layers itself resolves impl through here

    return layers


def functional_module(impl: str) -> ModuleType:
    """``bnbook.functional`` for ``impl="bnbook"``, ``torch.nn.functional`` for ``impl="torch"``."""
    if check_impl(impl) == "torch":
        from torch.nn import functional as F

        return F
    from bnbook import functional

    return functional
