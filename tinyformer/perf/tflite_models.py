"""int8 .tflite models built with TFLite's schema (tflite-micro's model editor), for the
importer's tests and the imported-model bench: random weights with per-channel scales as a
converter sets them (max |w| / 127 per output channel), activation scales calibrated on an
input as a converter does, and the graphs of MLPerf Tiny's reference models (ResNet-8 for
image classification at 32x32x3, DS-CNN for keyword spotting at 49x10x1) and a
MobileNet-style stack.

``oracle(model, x)`` runs TFLite Micro's own interpreter: the bit-exact reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

try:  # a dev dependency: the bench and the tests need it, the importer only its schema
    from tflite_micro.python.tflite_micro import runtime
    from tflite_micro.tensorflow.lite.micro.compression import model_editor as me
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb
except ImportError as exc:  # pragma: no cover - installed by `make setup`
    raise ImportError(
        "building .tflite models needs tflite-micro: pip install tflite-micro"
    ) from exc

from tinyformer.engine.ops.conv import patches, same_padding

OPS = fb.BuiltinOperator
NONE, RELU, RELU6 = 0, 1, 3
SAME, VALID = fb.Padding.SAME, fb.Padding.VALID


class Builder:
    """One subgraph, built op by op. Each activation also carries its float value on one
    calibration input (a float shadow of the model), and each op's output is quantized to
    that value's range, as a converter calibrates on a representative data set."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.sg = me.Subgraph()
        self.model = me.Model(subgraphs=[self.sg])
        self.real: dict[int, np.ndarray] = {}  # id(tensor) -> float value (no batch dim)

    def act(self, real: np.ndarray, scale: float, zp: int, shape=None) -> me.Tensor:
        q = me.Quantization(scales=float(np.float32(scale)), zero_points=int(zp))
        t = me.Tensor(shape=shape or (1, *real.shape), dtype=fb.TensorType.INT8, quantization=q)
        self.sg.tensors.append(t)
        self.real[id(t)] = real
        return t

    def calibrated(self, real: np.ndarray, shape=None) -> me.Tensor:
        """An activation quantized to the min..max of its calibration value."""
        lo, hi = min(float(real.min()), 0.0), max(float(real.max()), 0.0)
        scale = max(hi - lo, 1e-3) / 255
        zp = int(np.clip(round(-128 - lo / scale), -128, 127))
        return self.act(real, scale, zp, shape)

    def input(self, shape: tuple[int, ...], scale: float, zp: int) -> me.Tensor:
        real = (self.rng.integers(-128, 128, shape) - zp) * scale
        t = self.act(real, scale, zp)
        self.sg.inputs.append(t)
        return t

    def const(self, data: np.ndarray, dtype: int, q: me.Quantization | None = None) -> me.Tensor:
        t = me.Tensor(
            shape=data.shape, dtype=dtype, data=np.ascontiguousarray(data), quantization=q
        )
        self.sg.tensors.append(t)
        return t

    def op(self, code: int, inputs: list, outputs: list, kind: int = 0, options=None) -> None:
        o = me.Operator(opcode=code, inputs=inputs, outputs=outputs)
        if options is not None:
            o._fb.builtinOptionsType = kind
            o._fb.builtinOptions = options
        self.sg.operators.append(o)

    @staticmethod
    def q(t: me.Tensor) -> tuple[float, int]:
        return float(t.quantization.scales), int(t.quantization.zero_points)

    def weights(
        self, shape: tuple[int, ...], axis: int, sparsity: float = 0.0, per_channel: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """int8 weights and their float32 scales (per channel along ``axis``, or one), He
        initialised so that activations keep their range through the layers."""
        fan_in = int(np.prod(shape)) // shape[axis]
        w = self.rng.normal(0, math.sqrt(2 / fan_in), shape)
        if sparsity:
            w = block_prune(w, axis, sparsity)
        rows = np.moveaxis(w, axis, 0).reshape(shape[axis], -1)
        amax = np.abs(rows).max(axis=1) if per_channel else np.abs(rows).max().reshape(1)
        scales = (np.where(amax > 0, amax, 1.0) / 127).astype(np.float32)
        bshape = [1] * len(shape)
        bshape[axis] = -1
        unit = scales.reshape(bshape) if per_channel else scales[0]
        return np.clip(np.round(w / unit), -127, 127).astype(np.int8), scales

    def _weighted(self, x, wq, scales, axis, real, code, kind, options, act):
        """The op's weights, bias (int32 at input x weight scale) and calibrated output; ``real``
        computes the float output from (x, dequantized weights)."""
        xs, _ = self.q(x)
        per_channel = len(scales) > 1
        quant = me.Quantization(
            scales=[float(v) for v in scales],
            zero_points=[0] * len(scales),
            axis=axis if per_channel else None,
        )
        wt = self.const(wq, fb.TensorType.INT8, quant)
        bshape = [1] * wq.ndim
        bshape[axis] = -1
        w_real = wq * (scales.reshape(bshape) if per_channel else scales[0])
        channels = wq.shape[axis]
        b_real = self.rng.normal(0, 0.1, channels)
        acc_scale = xs * scales.astype(np.float64) * np.ones(channels)
        bias = np.round(b_real / acc_scale).astype(np.int32)
        bt = self.const(
            bias,
            fb.TensorType.INT32,
            me.Quantization(scales=[float(v) for v in acc_scale], zero_points=[0] * channels),
        )
        y = real(self.real[id(x)], w_real) + bias * acc_scale
        y = np.maximum(y, 0) if act == RELU else np.clip(y, 0, 6) if act == RELU6 else y
        out = self.calibrated(y)
        self.op(code, [x, wt, bt], [out], kind, options)
        return out

    def conv(self, x, cout, k, stride=1, padding=SAME, act=RELU, sparsity=0.0, kw=None):
        _, h, w, cin = x.shape
        kh, kw = k, kw or k
        wq, scales = self.weights((cout, kh, kw, cin), 0, sparsity)

        def real(xr, wr):
            win = patches(xr, kh, kw, stride, _pads(h, w, kh, kw, stride, padding), 0.0)
            return win.reshape(*win.shape[:2], -1) @ wr.reshape(cout, -1).T

        opts = fb.Conv2DOptionsT(
            padding=padding, strideW=stride, strideH=stride, fusedActivationFunction=act
        )
        return self._weighted(
            x, wq, scales, 0, real, OPS.CONV_2D, fb.BuiltinOptions.Conv2DOptions, opts, act
        )

    def depthwise(self, x, k=3, stride=1, padding=SAME, act=RELU):
        _, h, w, c = x.shape
        wq, scales = self.weights((1, k, k, c), 3)

        def real(xr, wr):
            win = patches(xr, k, k, stride, _pads(h, w, k, k, stride, padding), 0.0)
            return (win * wr[0]).sum(axis=(2, 3))

        opts = fb.DepthwiseConv2DOptionsT(
            padding=padding,
            strideW=stride,
            strideH=stride,
            depthMultiplier=1,
            fusedActivationFunction=act,
        )
        return self._weighted(
            x,
            wq,
            scales,
            3,
            real,
            OPS.DEPTHWISE_CONV_2D,
            fb.BuiltinOptions.DepthwiseConv2DOptions,
            opts,
            act,
        )

    def dense(self, x, m, act=NONE, per_channel=False, sparsity=0.0):
        """FULLY_CONNECTED on the flattened input (converters write its weights per tensor)."""
        k = int(np.prod(x.shape[1:]))
        wq, scales = self.weights((m, k), 0, sparsity, per_channel)
        opts = fb.FullyConnectedOptionsT(fusedActivationFunction=act)
        return self._weighted(
            x,
            wq,
            scales,
            0,
            lambda xr, wr: wr @ xr.reshape(-1),
            OPS.FULLY_CONNECTED,
            fb.BuiltinOptions.FullyConnectedOptions,
            opts,
            act,
        )

    def add(self, a, b, act=RELU):
        y = self.real[id(a)] + self.real[id(b)]
        out = self.calibrated(np.maximum(y, 0) if act == RELU else y)
        self.op(
            OPS.ADD,
            [a, b],
            [out],
            fb.BuiltinOptions.AddOptions,
            fb.AddOptionsT(fusedActivationFunction=act),
        )
        return out

    def avgpool(self, x, k):
        """k x k, stride k, VALID (TFLite keeps the input's quantization)."""
        _, h, w, c = x.shape
        xr = self.real[id(x)]
        y = xr[: h // k * k, : w // k * k].reshape(h // k, k, w // k, k, c).mean(axis=(1, 3))
        out = self.act(y, *self.q(x))
        opts = fb.Pool2DOptionsT(padding=VALID, strideW=k, strideH=k, filterWidth=k, filterHeight=k)
        self.op(OPS.AVERAGE_POOL_2D, [x], [out], fb.BuiltinOptions.Pool2DOptions, opts)
        return out

    def maxpool(self, x, k, stride, padding=SAME):
        """k x k max pooling (TFLite keeps the input's quantization)."""
        _, h, w, _ = x.shape
        win = patches(self.real[id(x)], k, k, stride, _pads(h, w, k, k, stride, padding), -np.inf)
        out = self.act(win.max(axis=(2, 3)), *self.q(x))
        opts = fb.Pool2DOptionsT(
            padding=padding, strideW=stride, strideH=stride, filterWidth=k, filterHeight=k
        )
        self.op(OPS.MAX_POOL_2D, [x], [out], fb.BuiltinOptions.Pool2DOptions, opts)
        return out

    def mean(self, x):
        """MEAN over height and width, keep_dims (Keras' GlobalAveragePooling2D)."""
        c = x.shape[3]
        axes = self.const(np.array([1, 2], np.int32), fb.TensorType.INT32)
        out = self.calibrated(self.real[id(x)].mean(axis=(0, 1)), shape=(1, 1, 1, c))
        self.op(
            OPS.MEAN,
            [x, axes],
            [out],
            fb.BuiltinOptions.ReducerOptions,
            fb.ReducerOptionsT(keepDims=True),
        )
        return out

    def reshape(self, x, shape):
        out = self.act(self.real[id(x)].reshape(shape[1:]), *self.q(x), shape=shape)
        shp = self.const(np.array(shape, np.int32), fb.TensorType.INT32)
        self.op(
            OPS.RESHAPE,
            [x, shp],
            [out],
            fb.BuiltinOptions.ReshapeOptions,
            fb.ReshapeOptionsT(newShape=list(shape)),
        )
        return out

    def softmax(self, x, beta=1.0):
        xr = self.real[id(x)]
        e = np.exp(beta * (xr - xr.max()))
        out = self.act(e / e.sum(), 1 / 256, -128, shape=x.shape)
        self.op(
            OPS.SOFTMAX, [x], [out], fb.BuiltinOptions.SoftmaxOptions, fb.SoftmaxOptionsT(beta=beta)
        )
        return out

    def logistic(self, x):
        out = self.act(1 / (1 + np.exp(-self.real[id(x)])), 1 / 256, -128, shape=x.shape)
        self.op(OPS.LOGISTIC, [x], [out])
        return out

    def requantize(self, x):
        """QUANTIZE int8 -> int8 onto a scale 1.5x the input's."""
        s, zp = self.q(x)
        out = self.act(self.real[id(x)], s * 1.5, zp // 2, shape=x.shape)
        self.op(OPS.QUANTIZE, [x], [out])
        return out

    def requantize_to(self, x, scale, zp):
        """QUANTIZE int8 -> int8 onto the given quantization."""
        out = self.act(self.real[id(x)], scale, zp, shape=x.shape)
        self.op(OPS.QUANTIZE, [x], [out])
        return out

    def _binary(self, code, kind, options, a, b, y):
        out = self.calibrated(y, shape=np.broadcast_shapes(a.shape, b.shape))
        self.op(code, [a, b], [out], kind, options)
        return out

    def mul(self, a, b):
        y = self.real[id(a)] * self.real[id(b)]
        return self._binary(OPS.MUL, fb.BuiltinOptions.MulOptions, fb.MulOptionsT(), a, b, y)

    def sub(self, a, b):
        y = self.real[id(a)] - self.real[id(b)]
        return self._binary(OPS.SUB, fb.BuiltinOptions.SubOptions, fb.SubOptionsT(), a, b, y)

    def squared_difference(self, a, b):
        y = (self.real[id(a)] - self.real[id(b)]) ** 2
        out = self.calibrated(y, shape=np.broadcast_shapes(a.shape, b.shape))
        self.op(OPS.SQUARED_DIFFERENCE, [a, b], [out])
        return out

    def concat(self, parts, axis):
        """CONCATENATION (TFLite needs one quantization: the parts must share it)."""
        y = np.concatenate([self.real[id(p)] for p in parts], axis=axis - 1 if axis > 0 else axis)
        out = self.act(y, *self.q(parts[0]))
        opts = fb.ConcatenationOptionsT(axis=axis)
        self.op(OPS.CONCATENATION, list(parts), [out], fb.BuiltinOptions.ConcatenationOptions,
                opts)  # fmt: skip
        return out

    def transpose(self, x, perm):
        y = self.real[id(x)][None].transpose(perm)[0]
        out = self.act(y, *self.q(x))
        self.op(OPS.TRANSPOSE, [x, self.const(np.array(perm, np.int32), fb.TensorType.INT32)],
                [out])  # fmt: skip
        return out

    def tanh(self, x):
        out = self.act(np.tanh(self.real[id(x)]), 1 / 128, 0, shape=x.shape)
        self.op(OPS.TANH, [x], [out])
        return out

    def hard_swish(self, x):
        xr = self.real[id(x)]
        out = self.calibrated(xr * np.clip(xr + 3, 0, 6) / 6)
        self.op(OPS.HARD_SWISH, [x], [out])
        return out

    def batch_matmul(self, a, b, adj_x=False, adj_y=False):
        ar, br = self.real[id(a)], self.real[id(b)]
        y = np.swapaxes(ar, -1, -2) if adj_x else ar
        y = y @ (np.swapaxes(br, -1, -2) if adj_y else br)
        opts = fb.BatchMatMulOptionsT(adjX=adj_x, adjY=adj_y)
        out = self.calibrated(y)
        self.op(OPS.BATCH_MATMUL, [a, b], [out], fb.BuiltinOptions.BatchMatMulOptions, opts)
        return out

    def constant(self, real: np.ndarray) -> me.Tensor:
        """An int8 constant (symmetric, per tensor), as a converter stores LayerNorm's gamma,
        beta and epsilon."""
        scale = float(np.float32(max(float(np.abs(real).max()), 1e-6) / 127))
        q = np.clip(np.round(real / scale), -127, 127).astype(np.int8)
        t = self.const(q, fb.TensorType.INT8, me.Quantization(scales=scale, zero_points=0))
        self.real[id(t)] = q * np.float32(scale)
        return t

    def add_to(self, a, b):
        """ADD without a fused activation (broadcasting, constants)."""
        y = self.real[id(a)] + self.real[id(b)]
        opts = fb.AddOptionsT(fusedActivationFunction=NONE)
        return self._binary(OPS.ADD, fb.BuiltinOptions.AddOptions, opts, a, b, y)

    def token_dense(self, x, m):
        """FULLY_CONNECTED on each token of [1][T][D], keep_num_dims (per-tensor weights)."""
        wq, scales = self.weights((m, x.shape[-1]), 0, per_channel=False)
        opts = fb.FullyConnectedOptionsT(keepNumDims=True)
        return self._weighted(x, wq, scales, 0, lambda xr, wr: xr @ wr.T, OPS.FULLY_CONNECTED,
                              fb.BuiltinOptions.FullyConnectedOptions, opts, NONE)  # fmt: skip

    def mean_last(self, x):
        """MEAN over the last axis, keep_dims (LayerNorm's mean and variance)."""
        axes = self.const(np.array([-1], np.int32), fb.TensorType.INT32)
        out = self.calibrated(self.real[id(x)].mean(axis=-1, keepdims=True))
        self.op(OPS.MEAN, [x, axes], [out], fb.BuiltinOptions.ReducerOptions,
                fb.ReducerOptionsT(keepDims=True))  # fmt: skip
        return out

    def rsqrt(self, x):
        out = self.calibrated(1 / np.sqrt(np.maximum(self.real[id(x)], 1e-6)))
        self.op(OPS.RSQRT, [x], [out])
        return out

    def layernorm(self, x, eps=1e-3):
        """LayerNorm over the last axis as a converter decomposes it."""
        d = x.shape[-1]
        centred = self.sub(x, self.mean_last(x))
        var = self.mean_last(self.mul(centred, centred))
        norm = self.mul(centred, self.rsqrt(self.add_to(var, self.constant(np.array([eps])))))
        gamma = self.constant(self.rng.uniform(0.5, 1.5, d))
        return self.add_to(self.mul(norm, gamma), self.constant(self.rng.normal(0, 0.2, d)))

    def build(self, output: me.Tensor) -> bytes:
        self.sg.outputs.append(output)
        return bytes(self.model.build())


def _pads(h: int, w: int, kh: int, kw: int, stride: int, padding: int) -> tuple[int, ...]:
    return same_padding(h, w, kh, kw, stride) if padding == SAME else (0, 0, 0, 0)


def block_prune(w: np.ndarray, axis: int, sparsity: float, block: int = 4) -> np.ndarray:
    """Zero the ``sparsity`` share of blocks of ``block`` consecutive input weights with the
    smallest L1 norm (rows = output channels along ``axis``), as block pruning leaves them."""
    rows = np.moveaxis(w, axis, 0)
    flat = rows.reshape(rows.shape[0], -1).copy()
    k = flat.shape[1] - flat.shape[1] % block
    blocks = flat[:, :k].reshape(flat.shape[0], -1, block)
    norms = np.abs(blocks).sum(axis=2)
    cut = np.quantile(norms, sparsity)
    blocks[norms <= cut] = 0
    flat[:, :k] = blocks.reshape(flat.shape[0], k)
    return np.moveaxis(flat.reshape(rows.shape), 0, axis)


def resnet8(seed: int = 0, sparsity: float = 0.0) -> bytes:
    """MLPerf Tiny image classification's ResNet-8 (32x32x3 -> 10)."""
    b = Builder(seed)
    x = b.input((32, 32, 3), 0.0078125, -1)
    y = b.conv(x, 16, 3, sparsity=sparsity)
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        h = b.conv(y, cout, 3, stride, sparsity=sparsity)
        h = b.conv(h, cout, 3, act=NONE, sparsity=sparsity)
        short = y if stride == 1 else b.conv(y, cout, 1, stride, act=NONE, sparsity=sparsity)
        y = b.add(short, h)
    y = b.avgpool(y, 8)
    y = b.reshape(y, (1, 64))
    return b.build(b.softmax(b.dense(y, 10, sparsity=sparsity)))


def ds_cnn(seed: int = 0) -> bytes:
    """MLPerf Tiny keyword spotting's DS-CNN (49x10x1 MFCCs -> 12)."""
    b = Builder(seed)
    x = b.input((49, 10, 1), 0.25, 40)
    y = b.conv(x, 64, 10, 2, kw=4)
    for _ in range(4):
        y = b.conv(b.depthwise(y), 64, 1)
    y = b.mean(y)
    y = b.reshape(y, (1, 64))
    return b.build(b.softmax(b.dense(y, 12), beta=0.05))


def mobilenet(seed: int = 0) -> bytes:
    """A MobileNet-v2-style stack: a max-pooled stem, inverted bottlenecks (ReLU6), a
    residual, strides."""
    b = Builder(seed)
    x = b.input((24, 24, 3), 0.02, 3)
    y = b.maxpool(b.conv(x, 16, 3, act=RELU6), 3, 2)
    for expand, cout, stride in ((32, 16, 1), (48, 24, 2), (72, 24, 1)):
        h = b.conv(y, expand, 1, act=RELU6)
        h = b.depthwise(h, 3, stride, act=RELU6)
        h = b.conv(h, cout, 1, act=NONE)
        y = b.add(y, h, act=NONE) if stride == 1 and cout == y.shape[3] else h
    y = b.requantize(b.mean(y))
    y = b.reshape(y, (1, 24))
    return b.build(b.logistic(b.dense(y, 8, per_channel=True)))


def op_mix(seed: int = 0) -> bytes:
    """TRANSPOSE, BATCH_MATMUL (two heads, as attention's scores and values, and 2-D with
    adj_x), HARD_SWISH, TANH, MUL and SUB (same shapes, broadcast over tokens and channels,
    a constant first: per channel, and a scalar as a table), SQUARED_DIFFERENCE (broadcast),
    CONCATENATION (three parts, and along the channels)."""
    b = Builder(seed)
    x = b.input((8, 16), 0.05, 3)
    heads = b.reshape(x, (1, 2, 8, 8))
    scores = b.batch_matmul(heads, b.transpose(heads, (0, 1, 3, 2)), adj_y=True)
    values = b.batch_matmul(scores, b.hard_swish(heads))
    y = b.reshape(b.transpose(values, (0, 2, 1, 3)), (1, 8, 16))
    y = b.mul(b.mul(y, x), b.tanh(x))
    y = b.sub(y, b.reshape(b.dense(x, 16), (1, 1, 16)))
    y = b.mul(y, b.reshape(b.dense(x, 8), (1, 8, 1)))
    y = b.sub(b.constant(b.rng.normal(0, 1, 16)), b.mul(b.constant(np.array([0.7])), y))
    y = b.sub(y, b.squared_difference(x, b.reshape(b.dense(x, 8), (1, 8, 1))))
    y = b.batch_matmul(y, b.batch_matmul(x, b.hard_swish(x), adj_x=True))  # y (x^T h)
    y = b.concat([y, b.requantize_to(x, *b.q(y)), y], axis=1)
    return b.build(b.concat([y, b.requantize_to(b.hard_swish(y), *b.q(y))], axis=-1))


def transformer_block(seed: int = 0, tokens: int = 8, dim: int = 16, heads: int = 2) -> bytes:
    """One pre-norm transformer block as a converter writes it: LayerNorm decomposed (MEAN,
    SUB, MUL, ADD epsilon, RSQRT, MUL, MUL gamma, ADD beta), Q/K/V FULLY_CONNECTED per token,
    heads by RESHAPE and TRANSPOSE, BATCH_MATMUL, MUL by 1/sqrt(d), SOFTMAX, BATCH_MATMUL,
    residual ADDs, and an MLP with GELU as x * LOGISTIC(1.702 x)."""
    b = Builder(seed)
    d = dim // heads
    x = b.input((tokens, dim), 0.05, 3)

    def split(t):  # [1][T][D] -> [1][H][T][d]
        return b.transpose(b.reshape(t, (1, tokens, heads, d)), (0, 2, 1, 3))

    h = b.layernorm(x)
    q, k, v = (split(b.token_dense(h, dim)) for _ in range(3))
    scores = b.mul(b.batch_matmul(q, k, adj_y=True), b.constant(np.array([d**-0.5])))
    ctx = b.batch_matmul(b.softmax(scores), v)
    ctx = b.reshape(b.transpose(ctx, (0, 2, 1, 3)), (1, tokens, dim))
    x = b.add(x, b.token_dense(ctx, dim), act=NONE)
    f = b.token_dense(b.layernorm(x), 2 * dim)
    f = b.mul(f, b.logistic(b.mul(f, b.constant(np.array([1.702])))))
    return b.build(b.add(x, b.token_dense(f, dim), act=NONE))


MODELS: dict[str, Callable[..., bytes]] = {
    "resnet8": resnet8,
    "ds_cnn": ds_cnn,
    "mobilenet": mobilenet,
    "op_mix": op_mix,
    "transformer_block": transformer_block,
}


def oracle(model: bytes, inputs: np.ndarray) -> np.ndarray:
    """TFLite Micro's interpreter on each input (a batch of int8 inputs, without batch dim)."""
    interp = runtime.Interpreter.from_bytes(model)
    outs = []
    for x in inputs:
        interp.set_input(x[None], 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0)).reshape(-1))
    return np.stack(outs)
