"""``BlockType``: the record the registry keeps of one block type."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BlockType:
    """One stage type (see :mod:`tinyformer.model.blocks`).

    ``config``: frozen dataclass of a subnet's stage (``validate``, ``out_size``, ``to_dict``);
    ``space``: frozen dataclass of its elastic choices (``pick``, ``check``, ``single``,
    ``fitted``); ``elastic``: the supernet stage, built as ``elastic(max_in, space)``, with
    ``forward(x, config)`` and ``export(in_ch, config)`` -> the plain stage, whose
    ``quantized()`` is its QAT layer (``forward(x, qin, integer)``, ``export(g, x, qin)``).
    """

    config: type
    space: type
    elastic: type

    @property
    def kind(self) -> str:
        return self.config.kind
