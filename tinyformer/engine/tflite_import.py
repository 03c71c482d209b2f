"""Import an int8 TensorFlow Lite model (``.tflite``) as an IR graph with TFLite's semantics.

The flatbuffer is read with the schema TFLite Micro ships (``tflite-micro``'s
``schema_py_generated``). Each operator becomes one engine op (or a reshape for a layout
change); its integer parameters are computed as TFLite Micro's Prepare computes them (same
float32 scales, same double arithmetic, same ``QuantizeMultiplier``), and the graph carries
``meta["rounding"] = "tflite"``, so the numpy reference and the firmware round as TFLite
Micro's reference kernels do: bit-exact with its interpreter.

A float model, int16 activations, an operator or option the engine has no kernel for, or a
file that is not a readable ``.tflite`` is a :class:`TFLiteImportError`, one line naming the
operator (and its index) or the problem. The batch dimension (1) is dropped: activations are
[H][W][C] or [T][C] as everywhere in the engine. Weights that are block-sparse are stored
block-sparse by the engine's cost model (:func:`~tinyformer.engine.storage.encode_weights`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyformer.engine.graph import Graph, Node, Tensor
from tinyformer.engine.intmath import INT8_MAX, INT8_MIN, quantize_multiplier_tflite
from tinyformer.engine.ops.conv import same_padding
from tinyformer.engine.ops.elementwise import LEFT_SHIFT
from tinyformer.engine.ops.tflm import (
    ADDSUB_MODES,
    add_sub,
    hard_swish_table,
    logistic_table,
    mean_params,
    mul,
    requantize_table,
    rsqrt_table,
    softmax_exp_table_tflite,
    tanh_table,
)
from tinyformer.engine.storage import encode_weights
from tinyformer.engine.validate import check_graph

SQUARED_DIFFERENCE_SHIFT = 7  # TFLM's: 255^2 2^14 stays in int32
SOFTMAX_OUT = (1.0 / 256.0, -128)  # TFLite's int8 softmax / logistic output quantization
_ACTIVATIONS = {0: None, 1: (0.0, None), 2: (-1.0, 1.0), 3: (0.0, 6.0)}  # fused: lo, hi (real)


class TFLiteImportError(ValueError):
    """A .tflite file the importer cannot take: one line naming the problem."""


def _schema() -> Any:
    try:
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated
    except ImportError:
        raise TFLiteImportError(
            "reading .tflite files needs the tflite-micro package: pip install tflite-micro"
        ) from None
    return schema_py_generated


def _names(cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass
class _TTensor:
    """A TFLite tensor: shape, type name, quantization, constant data."""

    shape: tuple[int, ...]
    dtype: str
    scales: list[float]
    zero_points: list[int]
    data: np.ndarray | None

    @property
    def scale(self) -> float:
        return self.scales[0] if self.scales else 0.0

    @property
    def zp(self) -> int:
        return self.zero_points[0] if self.zero_points else 0


_NP = {"INT8": np.int8, "INT32": np.int32, "UINT8": np.uint8, "INT16": np.int16,
       "FLOAT32": np.float32, "INT64": np.int64}  # fmt: skip


def _read(data: bytes, source: str) -> tuple[Any, Any]:
    """(schema module, ModelT) of a .tflite file's bytes, or one line saying why not."""
    fb = _schema()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise TFLiteImportError(f"{source} is not a TFLite model (no TFL3 identifier)")
    try:
        model = fb.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as exc:  # a damaged flatbuffer fails anywhere in the generated reader
        raise TFLiteImportError(f"{source} is damaged ({type(exc).__name__})") from None
    if not model.subgraphs:
        raise TFLiteImportError(f"{source} has no subgraph")
    return fb, model


class _Importer:
    def __init__(self, fb: Any, model: Any, name: str) -> None:
        self.fb, self.model, self.name = fb, model, name
        self.types = _names(fb.TensorType)
        self.op_names = _names(fb.BuiltinOperator)
        self.sg = model.subgraphs[0]
        self.tensors: dict[str, Tensor] = {}
        self.nodes: list[Node] = []
        self.alias: dict[int, str] = {}  # TFLite tensor index -> IR tensor name
        self.where = ""

    # -- reading ------------------------------------------------------------------------------

    def fail(self, problem: str) -> TFLiteImportError:
        return TFLiteImportError(f"{self.where}: {problem}" if self.where else problem)

    def tensor(self, index: int) -> _TTensor:
        if not 0 <= index < len(self.sg.tensors or []):
            raise self.fail(f"refers to tensor {index}, which does not exist")
        t = self.sg.tensors[index]
        dtype = self.types.get(t.type, f"type {t.type}")
        q = t.quantization
        scales = [float(s) for s in (q.scale if q is not None and q.scale is not None else [])]
        zps = [int(z) for z in (q.zeroPoint if q is not None and q.zeroPoint is not None else [])]
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        data = None
        buffers = self.model.buffers or []
        if 0 < t.buffer < len(buffers) and buffers[t.buffer].data is not None:
            raw = np.asarray(buffers[t.buffer].data, np.uint8).tobytes()
            if dtype not in _NP:
                raise self.fail(f"constant tensor {index} has type {dtype}")
            arr = np.frombuffer(raw, _NP[dtype])
            if arr.size != math.prod(shape):
                raise self.fail(f"constant tensor {index} holds {arr.size} values for {shape}")
            data = arr.reshape(shape)
        return _TTensor(shape, dtype, scales, zps, data)

    def activation(self, index: int) -> _TTensor:
        t = self.tensor(index)
        if t.dtype == "FLOAT32":
            raise self.fail(f"tensor {index} is float32: only int8 (full integer) models import")
        if t.dtype == "INT16":
            raise self.fail(f"tensor {index} is int16: only int8 activations are supported")
        if t.dtype != "INT8":
            raise self.fail(f"tensor {index} is {t.dtype.lower()}, not int8")
        if len(t.scales) != 1 or len(t.zero_points) != 1 or not t.scale > 0:
            raise self.fail(f"tensor {index} has no per-tensor int8 quantization")
        return t

    @staticmethod
    def ir_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
        """The engine's shape: without the batch dimension of 1."""
        return shape[1:] if len(shape) > 1 and shape[0] == 1 else shape

    def ir_tensor(self, index: int) -> str:
        """The IR activation for TFLite tensor ``index`` (created on first use)."""
        if index in self.alias:
            return self.alias[index]
        t = self.activation(index)
        if t.shape and t.shape[0] != 1:
            raise self.fail(f"tensor {index} has batch {t.shape[0]}: only batch 1 is supported")
        name = f"t{index}"
        self.tensors[name] = Tensor(name, self.ir_shape(t.shape), "int8", t.scale, t.zp)
        self.alias[index] = name
        return name

    def const(self, node: str, role: str, values: np.ndarray) -> str:
        name = f"{node}_{role}"
        arr = np.ascontiguousarray(values)
        self.tensors[name] = Tensor(name, tuple(arr.shape), str(arr.dtype), data=arr)
        return name

    def add_node(self, op: str, name: str, inputs: list[str], output: str, **attrs: Any) -> None:
        self.nodes.append(Node(op, name, inputs, [output], attrs))

    def reshape(self, src: str, shape: tuple[int, ...], name: str) -> str:
        """``src`` as ``shape`` (a reshape node when it differs)."""
        t = self.tensors[src]
        if tuple(t.shape) == tuple(shape):
            return src
        out = f"{name}_as"
        self.tensors[out] = Tensor(out, tuple(shape), "int8", t.scale, t.zero_point)
        self.add_node("reshape", f"{name}_reshape", [src], out)
        return out

    def write(self, index: int, produced: str, name: str) -> None:
        """Make ``produced`` (the op's result) TFLite tensor ``index``."""
        want = self.ir_shape(self.activation(index).shape)
        self.alias[index] = self.reshape(produced, want, name)

    # -- quantization -------------------------------------------------------------------------

    def act_range(self, fused: int, out: _TTensor) -> dict[str, int]:
        """act_min / act_max of a fused activation (TFLite: zp + round(f / scale) in float32)."""
        if fused not in _ACTIVATIONS:
            names = _names(self.fb.ActivationFunctionType)
            raise self.fail(f"fused activation {names.get(fused, fused)} is not supported")
        bounds = _ACTIVATIONS[fused]
        if bounds is None:
            return {}

        def q(f: float) -> int:
            v = float(np.float32(f) / np.float32(out.scale))
            return out.zp + int(math.copysign(math.floor(abs(v) + 0.5), v))

        lo, hi = bounds
        return {
            "act_min": max(INT8_MIN, q(lo)),
            "act_max": INT8_MAX if hi is None else min(INT8_MAX, q(hi)),
        }

    def requant(self, x: _TTensor, w: _TTensor, out: _TTensor, channels: int, fc: bool) -> dict:
        """Per-channel (multiplier, shift) as TFLite Micro derives them from float32 scales."""
        scales = w.scales if len(w.scales) == channels else w.scales[:1] * channels
        if len(scales) != channels or any(not s > 0 for s in scales):
            raise self.fail(f"weights need 1 or {channels} positive scales, got {len(w.scales)}")
        if any(z != 0 for z in w.zero_points):
            raise self.fail("weights have a non-zero zero point (int8 weights are symmetric)")
        if fc and len(w.scales) == 1:  # GetQuantizedConvolutionMultipler: a float32 product
            reals = [float(np.float32(x.scale) * np.float32(scales[0])) / out.scale] * channels
        else:
            reals = [x.scale * s / out.scale for s in scales]
        pairs = [quantize_multiplier_tflite(r) for r in reals]
        return {"multiplier": [m for m, _ in pairs], "shift": [s for _, s in pairs]}

    def bias(self, index: int, channels: int) -> np.ndarray | None:
        if index < 0:
            return None
        b = self.tensor(index)
        if b.data is None or b.dtype != "INT32" or b.data.size != channels:
            raise self.fail(f"bias tensor {index} must be a constant int32 [{channels}]")
        return b.data.reshape(channels).astype(np.int32)

    def same_quant(self, a: _TTensor, b: _TTensor, what: str) -> None:
        if a.scale != b.scale or a.zp != b.zp:
            raise self.fail(f"{what} changes the quantization, which the engine's op keeps")

    # -- operators ----------------------------------------------------------------------------

    def run(self) -> Graph:
        sg = self.sg
        ins, outs = (
            list(sg.inputs if sg.inputs is not None else []),
            list(sg.outputs if sg.outputs is not None else []),
        )
        if len(self.model.subgraphs) > 1:
            raise TFLiteImportError("the model has several subgraphs (control flow)")
        if len(ins) != 1 or len(outs) != 1:
            raise TFLiteImportError(
                f"the model has {len(ins)} inputs and {len(outs)} outputs; the engine runs 1 and 1"
            )
        ops = list(sg.operators if sg.operators is not None else [])
        codes = self.model.operatorCodes or []
        first, last = 0, len(ops)
        # QUANTIZE / DEQUANTIZE at the edges: the engine's input and output are the int8 ones.
        graph_in, graph_out = ins[0], outs[0]
        if (
            ops and self._code(codes, ops[0]) == "QUANTIZE" and ops[0].inputs[0] == graph_in
            and self.tensor(graph_in).dtype == "FLOAT32"
        ):  # fmt: skip
            graph_in, first = ops[0].outputs[0], 1
        if ops and self._code(codes, ops[-1]) == "DEQUANTIZE" and ops[-1].outputs[0] == graph_out:
            graph_out, last = ops[-1].inputs[0], len(ops) - 1
        self.where = "model input"
        x = self.ir_tensor(graph_in)
        for i in range(first, last):
            op = ops[i]
            code = self._code(codes, op)
            self.where = f"operator {i} ({code})"
            handler = getattr(self, f"op_{code.lower()}", None)
            if handler is None:
                raise TFLiteImportError(f"operator {i} ({code}) is not supported by the importer")
            handler(op, f"n{i}_{code.lower()}")
        self.where = "model output"
        if graph_out not in self.alias:
            raise self.fail(f"tensor {graph_out} is not produced by any operator")
        graph = Graph(
            self.name, self.tensors, self.nodes, [x], [self.alias[graph_out]],
            {"rounding": "tflite", "source": "tflite"},
        )  # fmt: skip
        try:
            check_graph(graph)
        except ValueError as exc:
            raise TFLiteImportError(f"the imported graph is invalid: {exc}") from None
        return encode_weights(graph)

    def _code(self, codes: list[Any], op: Any) -> str:
        if not 0 <= op.opcodeIndex < len(codes):
            raise TFLiteImportError(f"an operator has opcode index {op.opcodeIndex}: damaged")
        c = codes[op.opcodeIndex]
        code = max(int(c.builtinCode), int(c.deprecatedBuiltinCode))
        if code == self.fb.BuiltinOperator.CUSTOM:
            custom = c.customCode.decode() if isinstance(c.customCode, bytes) else c.customCode
            return f"CUSTOM {custom}"
        return self.op_names.get(code, f"operator code {code}")

    def _options(self, op: Any, kind: str) -> Any:
        if op.builtinOptions is None:
            raise self.fail(f"has no {kind}")
        return op.builtinOptions

    def _stride(self, o: Any) -> int:
        if min(o.strideH, o.strideW) < 1:
            raise self.fail(f"strides {o.strideH}x{o.strideW} are not positive")
        if o.strideH != o.strideW:
            raise self.fail(f"strides {o.strideH}x{o.strideW}: only equal strides are supported")
        return int(o.strideH)

    def _padding(self, o: Any, h: int, w: int, kh: int, kw: int, stride: int) -> list[int]:
        if o.padding == self.fb.Padding.VALID:
            return [0, 0, 0, 0]
        return list(same_padding(h, w, kh, kw, stride))

    def _conv(self, op: Any, name: str, depthwise: bool) -> None:
        o = self._options(op, "options")
        if o.dilationHFactor != 1 or o.dilationWFactor != 1:
            raise self.fail("dilated convolutions are not supported")
        x_t, w_t = self.activation(op.inputs[0]), self.tensor(op.inputs[1])
        out_t = self.activation(op.outputs[0])
        if w_t.data is None or w_t.dtype != "INT8":
            raise self.fail("weights must be a constant int8 tensor")
        x = self.ir_tensor(op.inputs[0])
        h, w, c = self.tensors[x].shape
        if depthwise:
            _, kh, kw, out_c = w_t.shape
            if out_c != c:
                raise self.fail(f"depth multiplier {out_c // c}: only 1 is supported")
            weights = w_t.data.reshape(kh, kw, c)
        else:
            out_c, kh, kw, _ = w_t.shape
            weights = w_t.data
        stride = self._stride(o)
        inputs = [x, self.const(name, "w", weights)]
        bias = self.bias(op.inputs[2] if len(op.inputs) > 2 else -1, out_c)
        if bias is not None:
            inputs.append(self.const(name, "b", bias))
        y = f"{name}_out"
        self.tensors[y] = Tensor(y, self.ir_shape(out_t.shape), "int8", out_t.scale, out_t.zp)
        attrs = {
            "input_zp": x_t.zp, "output_zp": out_t.zp,
            **self.requant(x_t, w_t, out_t, out_c, fc=False),
            "stride": stride, "padding": self._padding(o, h, w, kh, kw, stride),
            **self.act_range(o.fusedActivationFunction, out_t),
        }  # fmt: skip
        self.add_node("depthwise_conv2d" if depthwise else "conv2d", name, inputs, y, **attrs)
        self.write(op.outputs[0], y, name)

    def op_conv_2d(self, op: Any, name: str) -> None:
        self._conv(op, name, depthwise=False)

    def op_depthwise_conv_2d(self, op: Any, name: str) -> None:
        self._conv(op, name, depthwise=True)

    def op_fully_connected(self, op: Any, name: str) -> None:
        o = self._options(op, "options")
        if o.weightsFormat != 0:
            raise self.fail("shuffled weights are not supported")
        x_t, w_t, out_t = (self.activation(op.inputs[0]), self.tensor(op.inputs[1]),
                           self.activation(op.outputs[0]))  # fmt: skip
        if w_t.data is None or w_t.dtype != "INT8" or len(w_t.shape) != 2:
            raise self.fail("weights must be a constant int8 [out][in] tensor")
        m, k = w_t.shape
        x = self.ir_tensor(op.inputs[0])
        size = math.prod(self.tensors[x].shape)
        if size % k:
            raise self.fail(f"input of {size} values is not rows of {k}")
        x = self.reshape(x, (k,) if size == k else (size // k, k), name + "_in")
        inputs = [x, self.const(name, "w", w_t.data)]
        bias = self.bias(op.inputs[2] if len(op.inputs) > 2 else -1, m)
        if bias is not None:
            inputs.append(self.const(name, "b", bias))
        y = f"{name}_out"
        self.tensors[y] = Tensor(y, (*self.tensors[x].shape[:-1], m), "int8", out_t.scale, out_t.zp)
        attrs = {
            "input_zp": x_t.zp, "output_zp": out_t.zp,
            **self.requant(x_t, w_t, out_t, m, fc=True),
            **self.act_range(o.fusedActivationFunction, out_t),
        }  # fmt: skip
        self.add_node("linear", name, inputs, y, **attrs)
        self.write(op.outputs[0], y, name)

    def _pool(self, op: Any, name: str, kind: str) -> None:
        o = self._options(op, "options")
        x_t, out_t = self.activation(op.inputs[0]), self.activation(op.outputs[0])
        self.same_quant(x_t, out_t, "pooling")
        x = self.ir_tensor(op.inputs[0])
        h, w, _ = self.tensors[x].shape
        kh, kw, stride = int(o.filterHeight), int(o.filterWidth), self._stride(o)
        if min(kh, kw) < 1:
            raise self.fail(f"window {kh}x{kw} is empty")
        y = f"{name}_out"
        self.tensors[y] = Tensor(y, self.ir_shape(out_t.shape), "int8", out_t.scale, out_t.zp)
        self.add_node(
            kind, name, [x], y, kernel=[kh, kw], stride=stride,
            padding=self._padding(o, h, w, kh, kw, stride),
            **self.act_range(o.fusedActivationFunction, out_t),
        )  # fmt: skip
        self.write(op.outputs[0], y, name)

    def op_average_pool_2d(self, op: Any, name: str) -> None:
        self._pool(op, name, "avgpool")

    def op_max_pool_2d(self, op: Any, name: str) -> None:
        self._pool(op, name, "maxpool")

    def op_mean(self, op: Any, name: str) -> None:
        """MEAN over height and width of [1][H][W][C], or over the last axis (LayerNorm's):
        the channels moved first, then the same requantized sum over them."""
        o = self._options(op, "options")
        x_t, out_t = self.activation(op.inputs[0]), self.activation(op.outputs[0])
        axes = self.tensor(op.inputs[1]).data
        rank = len(x_t.shape)
        got = sorted(int(v) % rank for v in axes.ravel()) if axes is not None and rank else []
        last = got == [rank - 1] and rank >= 2 and bool(o.keepDims)
        if not last and (rank != 4 or got != [1, 2]):
            raise self.fail(
                "only MEAN over height and width of a 4-D tensor, or over the last axis with "
                "keep_dims, is supported"
            )
        if not o.keepDims and (x_t.scale != out_t.scale or x_t.zp != out_t.zp):
            raise self.fail("MEAN without keep_dims that requantizes runs in float in TFLite")
        x = self.ir_tensor(op.inputs[0])
        if last:
            shape = self.tensors[x].shape
            rows = math.prod(shape[:-1])
            x = self.reshape(x, (rows, shape[-1]), name + "_rows")
            x = self._permute(x, (1, 0), name + "_cols")
            x = self.reshape(x, (shape[-1], 1, rows), name + "_hwc")
            count, channels = shape[-1], rows
        else:
            count, channels = x_t.shape[1] * x_t.shape[2], x_t.shape[3]
        mult, shift = mean_params(*quantize_multiplier_tflite(x_t.scale / out_t.scale), count)
        y = f"{name}_out"
        self.tensors[y] = Tensor(y, (channels,), "int8", out_t.scale, out_t.zp)
        self.add_node("mean", name, [x], y, input_zp=x_t.zp, output_zp=out_t.zp,
                      multiplier=mult, shift=shift)  # fmt: skip
        self.write(op.outputs[0], y, name)

    def _layout(self, op: Any, name: str) -> None:
        x_t, out_t = self.activation(op.inputs[0]), self.activation(op.outputs[0])
        self.same_quant(x_t, out_t, "the reshape")
        self.write(op.outputs[0], self.ir_tensor(op.inputs[0]), name)

    op_reshape = op_squeeze = _layout

    def _lut(self, op: Any, name: str, table: np.ndarray, source: int | None = None) -> None:
        x = self.ir_tensor(op.inputs[0] if source is None else source)
        out_t = self.activation(op.outputs[0])
        y = f"{name}_out"
        self.tensors[y] = Tensor(y, self.tensors[x].shape, "int8", out_t.scale, out_t.zp)
        self.add_node("lut", name, [x, self.const(name, "lut", table)], y)
        self.write(op.outputs[0], y, name)

    def _fixed_output(self, index: int) -> _TTensor:
        out_t = self.activation(index)
        if (out_t.scale, out_t.zp) != SOFTMAX_OUT:
            raise self.fail("the output must be quantized with scale 1/256, zero point -128")
        return out_t

    def op_logistic(self, op: Any, name: str) -> None:
        self._fixed_output(op.outputs[0])
        x_t = self.activation(op.inputs[0])
        self._lut(op, name, logistic_table(x_t.scale, x_t.zp))

    def op_quantize(self, op: Any, name: str) -> None:
        x_t, out_t = self.activation(op.inputs[0]), self.activation(op.outputs[0])
        self._lut(op, name, requantize_table(x_t.scale, x_t.zp, out_t.scale, out_t.zp))

    def op_softmax(self, op: Any, name: str) -> None:
        o = self._options(op, "options")
        x_t = self.activation(op.inputs[0])
        out_t = self._fixed_output(op.outputs[0])
        x = self.ir_tensor(op.inputs[0])
        table = softmax_exp_table_tflite(x_t.scale, float(o.beta))
        y = f"{name}_out"
        self.tensors[y] = Tensor(y, self.tensors[x].shape, "int8", out_t.scale, out_t.zp)
        self.add_node("softmax", name, [x, self.const(name, "exp", table)], y)
        self.write(op.outputs[0], y, name)

    def op_tanh(self, op: Any, name: str) -> None:
        out_t = self.activation(op.outputs[0])
        if (out_t.scale, out_t.zp) != (1.0 / 128.0, 0):
            raise self.fail("the output must be quantized with scale 1/128, zero point 0")
        x_t = self.activation(op.inputs[0])
        self._lut(op, name, tanh_table(x_t.scale, x_t.zp))

    def op_rsqrt(self, op: Any, name: str) -> None:
        x_t, out_t = self.activation(op.inputs[0]), self.activation(op.outputs[0])
        self._lut(op, name, rsqrt_table(x_t.scale, x_t.zp, out_t.scale, out_t.zp))

    def op_hard_swish(self, op: Any, name: str) -> None:
        x_t, out_t = self.activation(op.inputs[0]), self.activation(op.outputs[0])
        try:
            table = hard_swish_table(x_t.scale, x_t.zp, out_t.scale, out_t.zp)
        except ValueError as exc:
            raise self.fail(str(exc)) from None
        self._lut(op, name, table)

    def _operands(self, op: Any) -> tuple[str, str]:
        """The two activations of BATCH_MATMUL (a constant operand is refused by name)."""
        for i in op.inputs[:2]:
            if self.tensor(i).data is not None:
                raise self.fail(f"input tensor {i} is a constant: only activations are supported")
        return self.ir_tensor(op.inputs[0]), self.ir_tensor(op.inputs[1])

    def _arith_params(self, kind: str, a_t: _TTensor, b_t: _TTensor, out_t: _TTensor) -> dict:
        """ADD / SUB / MUL's integer parameters as TFLite Micro's Prepare computes them."""
        if kind == "mul":
            m, s = quantize_multiplier_tflite(a_t.scale * b_t.scale / out_t.scale)
            return {"input1_zp": a_t.zp, "input2_zp": b_t.zp, "output_zp": out_t.zp,
                    "multiplier": m, "shift": s}  # fmt: skip
        shift = SQUARED_DIFFERENCE_SHIFT if kind == "squared_difference" else LEFT_SHIFT
        if kind != "sub":  # ADD's and SQUARED_DIFFERENCE's Prepare work in double, SUB's in float32
            twice_max = 2.0 * max(a_t.scale, b_t.scale)
            out_real = (
                twice_max**2 / ((1 << 2 * shift) * out_t.scale) if kind == "squared_difference"
                else twice_max / ((1 << shift) * out_t.scale)
            )  # fmt: skip
            reals = (a_t.scale / twice_max, b_t.scale / twice_max, out_real)
        else:
            f32 = np.float32
            twice = f32(2) * max(f32(a_t.scale), f32(b_t.scale))
            reals = (float(f32(a_t.scale) / twice), float(f32(b_t.scale) / twice),
                     float(twice / (f32(1 << LEFT_SHIFT) * f32(out_t.scale))))  # fmt: skip
        (m1, s1), (m2, s2), (mo, so) = (quantize_multiplier_tflite(r) for r in reals)
        return {
            "input1_zp": a_t.zp, "input1_multiplier": m1, "input1_shift": s1,
            "input2_zp": b_t.zp, "input2_multiplier": m2, "input2_shift": s2,
            "output_zp": out_t.zp, "output_multiplier": mo, "output_shift": so,
            "left_shift": shift,
        }  # fmt: skip

    def _arith(self, op: Any, name: str, kind: str) -> None:
        """ADD, SUB, MUL, SQUARED_DIFFERENCE: same shapes (ADD: the engine's add), broadcasting,
        or with an int8
        constant on either side; a scalar constant makes the op a table of the other input."""
        squared = kind == "squared_difference"  # no options, no fused activation
        fused = 0 if squared else self._options(op, "options").fusedActivationFunction
        first, second = op.inputs[0], op.inputs[1]
        a_t, b_t, out_t = (self.activation(i) for i in (first, second, op.outputs[0]))
        if a_t.data is not None and b_t.data is not None:
            raise self.fail("both inputs are constants")
        attrs = {**self._arith_params(kind, a_t, b_t, out_t), **self.act_range(fused, out_t)}
        scalar = [t.data is not None and t.data.size == 1 for t in (a_t, b_t)]
        if any(scalar):  # a function of the other input alone
            lo, hi = attrs.pop("act_min", INT8_MIN), attrs.pop("act_max", INT8_MAX)
            xs = np.arange(INT8_MIN, INT8_MAX + 1)
            x1, x2 = (t.data.reshape(1) if t.data is not None else xs for t in (a_t, b_t))
            if kind == "mul":
                table = mul(x1, x2, **attrs, act_min=lo, act_max=hi)
            else:
                mode = ADDSUB_MODES["add_broadcast" if kind == "add" else kind]
                table = add_sub(x1, x2, **attrs, act_min=lo, act_max=hi, mode=mode)
            self._lut(op, name, table, second if scalar[0] else first)
            return
        a, b = (
            self.ir_tensor(i) if t.data is None
            else self.const(name, f"c{k}", t.data.reshape(self.ir_shape(t.shape)))
            for k, (i, t) in enumerate(((first, a_t), (second, b_t)))
        )  # fmt: skip
        same = a_t.data is None and b_t.data is None
        if kind == "add" and not (same and self.tensors[a].shape == self.tensors[b].shape):
            kind = "add_broadcast"  # the engine's add takes two activations of one shape
        self._binary(op, name, kind, a, b, **attrs)

    def op_add(self, op: Any, name: str) -> None:
        self._arith(op, name, "add")

    def op_sub(self, op: Any, name: str) -> None:
        self._arith(op, name, "sub")

    def op_mul(self, op: Any, name: str) -> None:
        self._arith(op, name, "mul")

    def op_squared_difference(self, op: Any, name: str) -> None:
        self._arith(op, name, "squared_difference")

    def _binary(self, op: Any, name: str, kind: str, a: str, b: str, **attrs: Any) -> None:
        shapes = self.tensors[a].shape, self.tensors[b].shape
        try:
            shape = tuple(int(v) for v in np.broadcast_shapes(*shapes))
        except ValueError:
            raise self.fail(f"shapes {shapes[0]} and {shapes[1]} do not broadcast") from None
        if len(shape) > 4:
            raise self.fail(f"output shape {shape}: more than 4 dimensions")
        out_t = self.activation(op.outputs[0])
        y = f"{name}_out"
        self.tensors[y] = Tensor(y, shape, "int8", out_t.scale, out_t.zp)
        self.add_node(kind, name, [a, b], y, **attrs)
        self.write(op.outputs[0], y, name)

    def op_concatenation(self, op: Any, name: str) -> None:
        o = self._options(op, "options")
        out_t = self.activation(op.outputs[0])
        if o.fusedActivationFunction:
            raise self.fail("a fused activation on CONCATENATION is not supported")
        parts = []
        for i in op.inputs:
            self.same_quant(self.activation(i), out_t, "concatenating")
            parts.append(self.ir_tensor(i))
        rank = len(out_t.shape)
        axis = int(o.axis) + rank if o.axis < 0 else int(o.axis)
        dropped = rank - len(self.ir_shape(out_t.shape))  # the batch dimension
        if not dropped <= axis < rank:
            raise self.fail(f"axis {o.axis} of a {rank}-D output is not supported")
        y = parts[0]
        for k, part in enumerate(parts[1:]):  # pairwise: each step appends one input
            a, b = self.tensors[y].shape, self.tensors[part].shape
            step = f"{name}_{k}"
            out = f"{step}_out"
            shape = (*a[: axis - dropped], a[axis - dropped] + b[axis - dropped],
                     *a[axis - dropped + 1 :])  # fmt: skip
            self.tensors[out] = Tensor(out, shape, "int8", out_t.scale, out_t.zp)
            self.add_node("concat", step, [y, part], out, axis=axis - dropped)
            y = out
        self.write(op.outputs[0], y, name)

    def _permute(self, x: str, perm: tuple[int, ...], name: str) -> str:
        """``x`` transposed by ``perm`` (numpy's), as the engine's 4-D transpose."""
        shape = self.tensors[x].shape
        if list(perm) == list(range(len(perm))):
            return x
        pad = 4 - len(shape)
        t = self.tensors[x]
        out = f"{name}_t"
        self.tensors[out] = Tensor(
            out, tuple(shape[p] for p in perm), "int8", t.scale, t.zero_point
        )
        self.add_node(
            "transpose", name, [x], out, shape=[1] * pad + list(shape),
            perm=list(range(pad)) + [p + pad for p in perm], inner=1,
        )  # fmt: skip
        return out

    def op_transpose(self, op: Any, name: str) -> None:
        x_t, out_t = self.activation(op.inputs[0]), self.activation(op.outputs[0])
        self.same_quant(x_t, out_t, "TRANSPOSE")
        perm_t = self.tensor(op.inputs[1]).data
        rank = len(x_t.shape)
        if perm_t is None or sorted(int(p) for p in perm_t.ravel()) != list(range(rank)):
            raise self.fail("the permutation must be a constant permutation of the dimensions")
        perm = [int(p) for p in perm_t.ravel()]
        x = self.ir_tensor(op.inputs[0])
        dropped = rank - len(self.tensors[x].shape)
        if dropped and perm[0] != 0:
            raise self.fail("a transpose that moves the batch dimension is not supported")
        perm = [p - dropped for p in perm[dropped:]]
        if len(perm) > 4:
            raise self.fail(f"a {len(perm)}-D transpose is not supported (4-D at most)")
        self.write(op.outputs[0], self._permute(x, tuple(perm), name), name)

    def op_batch_matmul(self, op: Any, name: str) -> None:
        """[B][M][K] x [B][K][N] (adj flags transpose the last two): the engine's matmul_qk
        with B heads, its operands transposed to [M][B*K] and [N][B*K]."""
        o = self._options(op, "options")
        a_t, b_t, out_t = (self.activation(i) for i in (*op.inputs[:2], op.outputs[0]))
        a, b = self._operands(op)
        shapes = [self.tensors[t].shape for t in (a, b)]
        if any(len(s) not in (2, 3) for s in shapes) or len(shapes[0]) != len(shapes[1]):
            raise self.fail(f"operands {shapes[0]} and {shapes[1]}: [B][M][K] x [B][K][N] only")
        if len(shapes[0]) == 3 and shapes[0][0] != shapes[1][0]:
            raise self.fail(f"batches {shapes[0][0]} and {shapes[1][0]} differ (no broadcast)")
        three = len(shapes[0]) == 3
        # lhs to [M][B][K], rhs to [N][B][K]: (batch, row, col) of each operand
        lhs: tuple[int, ...] = (1, 0, 2) if not o.adjX else (2, 0, 1)
        rhs: tuple[int, ...] = (1, 0, 2) if o.adjY else (2, 0, 1)
        if not three:
            lhs, rhs = (0, 1) if not o.adjX else (1, 0), (0, 1) if o.adjY else (1, 0)
        q = self._permute(a, lhs, name + "_lhs")
        k = self._permute(b, rhs, name + "_rhs")
        heads = shapes[0][0] if three else 1
        q = self.reshape(q, (self.tensors[q].shape[0], math.prod(self.tensors[q].shape[1:])),
                         name + "_q")  # fmt: skip
        k = self.reshape(k, (self.tensors[k].shape[0], math.prod(self.tensors[k].shape[1:])),
                         name + "_k")  # fmt: skip
        m, s = quantize_multiplier_tflite(a_t.scale * b_t.scale / out_t.scale)
        y = f"{name}_out"
        shape = (heads, self.tensors[q].shape[0], self.tensors[k].shape[0])
        self.tensors[y] = Tensor(y, shape, "int8", out_t.scale, out_t.zp)
        self.add_node("matmul_qk", name, [q, k], y, heads=heads, q_zp=a_t.zp, k_zp=b_t.zp,
                      multiplier=m, shift=s, output_zp=out_t.zp)  # fmt: skip
        self.write(op.outputs[0], y, name)


def import_tflite_bytes(data: bytes, name: str = "model", source: str = "the model") -> Graph:
    """The IR graph of a ``.tflite`` file's bytes (module docstring)."""
    fb, model = _read(bytes(data), source)
    try:
        return _Importer(fb, model, name).run()
    except TFLiteImportError as exc:
        raise TFLiteImportError(f"{source}: {exc}") from None
    except (ArithmeticError, AttributeError, IndexError, KeyError, TypeError, ValueError,
            RecursionError) as exc:  # fmt: skip  # what fields of a damaged file can raise
        raise TFLiteImportError(f"{source} is malformed ({type(exc).__name__})") from None


def import_tflite(path: Path) -> Graph:
    """The IR graph of the ``.tflite`` file at ``path``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TFLiteImportError(f"cannot read {path}: {exc.strerror}") from None
    name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in path.stem) or "model"
    return import_tflite_bytes(data, name, str(path))
