"""How an exported model does: the IR file run by the numpy reference interpreter, against
the labels and against the QAT model it came from."""

from __future__ import annotations

import numpy as np
import torch

from tinyformer.data.datasets import ImageDataset
from tinyformer.engine.ir import Graph
from tinyformer.engine.reference import outputs_many
from tinyformer.quant.input_file import model_input
from tinyformer.quant.qmodules import QuantSubnet


def reference_logits(graph: Graph, images: np.ndarray) -> np.ndarray:
    """int8 logits [N, classes] of the numpy reference interpreter on uint8 NHWC images."""
    return outputs_many(graph, model_input(images))


def agreement(model: QuantSubnet, graph: Graph, split: ImageDataset) -> dict[str, float]:
    """Reference accuracy and how the QAT model's predictions agree with the reference."""
    ref = reference_logits(graph, split.images).astype(np.int64)
    images, labels = split.tensors(next(model.parameters()).device)
    x = images.float() / 255.0
    model.eval()
    codes, _ = model.int_logits(x)
    with torch.no_grad(), model.simulated():
        sim = model(x).argmax(dim=1).cpu().numpy()
    codes = codes.cpu().numpy()
    ref_pred = ref.argmax(axis=1)
    y = labels.cpu().numpy()
    return {
        "reference_acc": float((ref_pred == y).mean()),
        "agreement": float((codes.argmax(axis=1) == ref_pred).mean()),
        "exact_logits": float((codes == ref).all(axis=1).mean()),
        "agreement_fake_quant": float((sim == ref_pred).mean()),
    }


def weight_bytes(graph: Graph) -> dict[str, int]:
    """Bytes of the weighted layers' weights: all dense, and as the file stores them."""
    dense = stored = 0
    for node in graph.nodes:
        if node.op in ("conv2d", "depthwise_conv2d", "linear"):
            t = graph.tensors[node.inputs[1]]
            dense += t.nbytes
            stored += int(np.asarray(t.data).nbytes)
    return {"weight_bytes_dense": dense, "weight_bytes_stored": stored}
