"""The QAT checkpoint (``qat.pt``): config, sparsity plan, weights, observed ranges and masks
in one torch file, enough to rebuild the frozen ``QuantSubnet`` and re-export it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tinyformer.model import torch_file
from tinyformer.model.config import SubnetConfig
from tinyformer.model.subnet import Subnet
from tinyformer.prune import SparsityPlan, apply_masks, masks_of
from tinyformer.quant.qmodules import QuantSubnet

QAT_FORMAT = "tinyformer-qat"
QAT_VERSION = 1


def save_qat(model: QuantSubnet, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Config, sparsity plan, weights, observed ranges and masks in one torch file.

    ``meta`` (JSON-able) comes back as ``load_qat(path).meta``; the pipeline stores the graph's
    name and metadata there (``graph_name``, ``graph_meta``) so a re-export is identical."""
    return torch_file.save(
        {
            "format": QAT_FORMAT,
            "version": QAT_VERSION,
            "config": model.config.to_json(),
            "plan": model.plan.to_json(),
            "state_dict": model.state_dict(),
            "masks": masks_of(model),
            "meta": meta or {},
        },
        path,
    )


def is_qat_checkpoint(path: str | Path) -> bool:
    try:
        data = torch_file.load(path)
    except torch_file.TorchFileError:
        return False
    return isinstance(data, dict) and data.get("format") == QAT_FORMAT


def load_qat(path: str | Path, map_location: str | torch.device = "cpu") -> QuantSubnet:
    """A frozen, eval-mode ``QuantSubnet`` from :func:`save_qat`'s file."""
    data = torch_file.check_format(
        torch_file.load(path, map_location),
        path,
        QAT_FORMAT,
        QAT_VERSION,
        "QAT checkpoint",
        ValueError,
    )
    config = SubnetConfig.from_json(data["config"])
    plan = SparsityPlan.from_json(data["plan"])
    model = QuantSubnet.from_subnet(Subnet.from_config(config).eval(), plan)
    model.load_state_dict(data["state_dict"])
    apply_masks(model, data["masks"])
    model.freeze()
    model.meta = dict(data.get("meta", {}))
    return model.to(map_location).eval()
