"""Which layers can be pruned: the layers a sparsity plan may name."""

from __future__ import annotations

from torch import nn


def is_prunable(module: nn.Module) -> bool:
    """``nn.Linear``, dense ``nn.Conv2d`` (``groups == 1``) and any module with a ``weight``
    that declares ``prunable = True``; depthwise convs and norms are never pruned."""
    flag = getattr(module, "prunable", None)
    if flag is not None:
        return bool(flag)
    if isinstance(module, nn.Linear):
        return True
    return isinstance(module, nn.Conv2d) and module.groups == 1


def prunable_modules(model: nn.Module) -> dict[str, nn.Module]:
    """name -> module for every prunable layer, in module order."""
    return {name: m for name, m in model.named_modules() if name and is_prunable(m)}
