"""Integer-exact QAT for Subnets, and export to the engine's IR.

- :mod:`~tinyformer.quant.fakequant`: fake quantization, observers, weight / bias quantization;
- :mod:`~tinyformer.quant.fold`: BatchNorm folding;
- :mod:`~tinyformer.quant.intops`: batched integer ops, bit-identical to the engine's;
- :mod:`~tinyformer.quant.qmodules`: QAT layers and ``QuantSubnet``;
- :mod:`~tinyformer.quant.export`: ``QuantSubnet`` -> IR graph / file;
- :mod:`~tinyformer.quant.checkpoint`: the QAT checkpoint file;
- :mod:`~tinyformer.quant.evaluate`: the exported file against the labels and the QAT model;
- :mod:`~tinyformer.quant.pipeline`: train -> prune -> QAT -> export.
"""

from tinyformer.quant.export import export, to_graph
from tinyformer.quant.fakequant import (
    INPUT_QPARAMS,
    ActQuant,
    fake_quant,
    fake_quant_weight,
    qparams_from_range,
)
from tinyformer.quant.fold import fold_bn, fold_conv_bn
from tinyformer.quant.qmodules import QuantSubnet

__all__ = [
    "INPUT_QPARAMS",
    "ActQuant",
    "QuantSubnet",
    "export",
    "fake_quant",
    "fake_quant_weight",
    "fold_bn",
    "fold_conv_bn",
    "qparams_from_range",
    "to_graph",
]
