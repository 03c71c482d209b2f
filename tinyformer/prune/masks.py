"""Pruning masks attached to modules: they keep pruned weights exactly zero.

A pruned layer carries its 0/1 mask as the buffer ``weight_mask`` (same shape as ``weight``;
not persistent, so a pruned ``Subnet`` still saves and loads as a plain one: its zero blocks
*are* the pruning, and :func:`masks_from_zeros` recovers the masks from them). Three things
keep the pruned weights at exactly zero through fine-tuning and QAT:

- setting a mask multiplies the weight by it;
- a gradient hook multiplies the weight's gradient by it (no update leaks into pruned blocks);
- :func:`attach` registers an optimizer step post-hook that multiplies the weights again after
  every step (AdamW's decoupled weight decay keeps zeros, but momentum from before pruning does
  not).

QAT layers (``tinyformer.quant``) also apply the mask in their forward pass and carry it into
the exported weights. Prunable layers: :mod:`tinyformer.prune.prunable`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from tinyformer.prune.blocks import block_mask, block_sparsity, mask_from_zeros
from tinyformer.prune.plan import PlanError, SparsityPlan
from tinyformer.prune.prunable import prunable_modules

MASK = "weight_mask"


def get_mask(module: nn.Module) -> torch.Tensor | None:
    return getattr(module, MASK, None)


def _grad_hook(module: nn.Module):
    def hook(grad: torch.Tensor) -> torch.Tensor:
        mask = get_mask(module)
        return grad if mask is None else grad * mask

    return hook


def set_mask(module: nn.Module, mask: torch.Tensor) -> None:
    """Attach ``mask`` to ``module`` (replacing any earlier one) and zero the pruned weights."""
    weight = module.weight
    if mask.shape != weight.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} != weight shape {tuple(weight.shape)}")
    mask = mask.detach().to(device=weight.device, dtype=weight.dtype)
    if get_mask(module) is None:
        module.register_buffer(MASK, mask, persistent=False)
    else:
        setattr(module, MASK, mask)
    if getattr(module, "_prune_hook", None) is None:
        module._prune_hook = weight.register_hook(_grad_hook(module))
    with torch.no_grad():
        weight.mul_(mask)


def remove_mask(module: nn.Module) -> None:
    """Detach the mask (the weights keep their zeros)."""
    if get_mask(module) is not None:
        del module._buffers[MASK]
    handle = getattr(module, "_prune_hook", None)
    if handle is not None:
        handle.remove()
        module._prune_hook = None


def masks_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """name -> mask of every masked layer (clones, on the CPU)."""
    return {
        name: get_mask(m).detach().cpu().clone()
        for name, m in model.named_modules()
        if name and get_mask(m) is not None
    }


def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Attach saved masks (from :func:`masks_of`) by layer name."""
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        if name not in modules:
            raise PlanError(f"mask for unknown layer {name!r}")
        set_mask(modules[name], mask)


@torch.no_grad()
def enforce_masks(model: nn.Module) -> None:
    """Multiply every masked layer's weight by its mask."""
    for m in model.modules():
        mask = get_mask(m)
        if mask is not None:
            m.weight.mul_(mask)


def attach(model: nn.Module, optimizer: torch.optim.Optimizer):
    """Re-apply the masks after every ``optimizer.step()``; returns the hook's handle."""
    return optimizer.register_step_post_hook(lambda opt, args, kwargs: enforce_masks(model))


def prune(model: nn.Module, plan: SparsityPlan, fraction: float = 1.0) -> None:
    """Recompute every planned layer's mask at ``fraction`` of its target sparsity.

    Magnitude is the block L2 norm of the current weights; blocks pruned earlier are zero, so
    they rank lowest and stay pruned while the sparsity grows (Zhu & Gupta).
    """
    plan.check(model)
    modules = prunable_modules(model)
    for name, spec in plan.items():
        module = modules[name]
        with torch.no_grad():
            mask = block_mask(module.weight, spec.block, spec.sparsity * fraction)
        set_mask(module, mask)


def masks_from_zeros(model: nn.Module, plan: SparsityPlan) -> None:
    """Re-attach the masks of an already pruned model (e.g. one loaded from a file)."""
    plan.check(model)
    modules = prunable_modules(model)
    for name, spec in plan.items():
        set_mask(modules[name], mask_from_zeros(modules[name].weight, spec.block))


def sparsity_report(model: nn.Module, plan: SparsityPlan) -> dict[str, dict[str, float]]:
    """Per planned layer: block size, target and achieved block sparsity, weight sparsity."""
    modules = prunable_modules(model)
    report = {}
    for name, spec in plan.items():
        w = modules[name].weight.detach()
        report[name] = {
            "block": spec.block,
            "target": spec.sparsity,
            "block_sparsity": block_sparsity(w, spec.block),
            "weight_sparsity": float((w == 0).to(torch.float64).mean()),
            "weights": int(w.numel()),
        }
    return report


def overall_sparsity(model: nn.Module) -> dict[str, float]:
    """Zero fraction over all prunable layers' weights, and their total count."""
    total = zeros = 0
    for m in prunable_modules(model).values():
        total += m.weight.numel()
        zeros += int((m.weight.detach() == 0).sum())
    return {"prunable_weights": total, "zero_weights": zeros, "sparsity": zeros / max(1, total)}
