"""Bit-exact execution of the `quant` dialect: the oracle every backend matches.

`prepare(op)` turns one quant op into a function of its operand arrays, with
everything that depends only on the op (requantization multipliers from
`qcc.numerics`, unpacked weights, lookup tables) computed once. Arrays are
integer storage types (int8/int16/int32); a leading batch axis larger than the
op's declared one runs as independent samples.

Integer dot products run through float64 BLAS: the operands are integers and
every partial sum is bounded by the accumulator proof (< 2^47 < 2^53), so each
float64 sum is exact, and the int64 result equals the integer formulation
(tests/test_int_kernels.py checks this against pure int64 loops).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from qcc import numerics as nx
from qcc.dialects import quant as q
from qcc.float_kernels import EXACT, KERNELS

Kernel = Callable[[list[np.ndarray]], np.ndarray]
_REGISTRY: dict[type, Callable[[q.QuantOp], Kernel]] = {}


def _impl(cls):
    def deco(fn):
        _REGISTRY[cls] = fn
        return fn

    return deco


def prepare(op: q.QuantOp) -> Kernel:
    make = _REGISTRY.get(type(op))
    if make is None:
        raise NotImplementedError(f"{op.name} has no integer implementation")
    return make(op)


def _qp(v) -> nx.QParams:
    qp = q.qparams_of(v.type)
    assert qp is not None
    return qp


def _shape(v) -> tuple[int, ...]:
    return tuple(v.type.get_shape())


def _onnx_attrs(op: q.QuantOp, *keys: str) -> dict:
    return {k: op.attr(k) for k in keys if k in op.attributes}


def _finish(acc: np.ndarray, m0, shift, acc_bits: int, zp: int, lo: int, hi: int, qp: nx.QParams) -> np.ndarray:
    y = nx.requantize(acc, m0, shift, acc_bits) + zp
    return nx.saturate(y, lo, hi, qp.bits, qp.signed)


def _clamp_bounds(op: q.QuantOp) -> tuple[int, int]:
    qp = _qp(op.results[0])
    return op.attr("act_min", qp.qmin), op.attr("act_max", qp.qmax)


def _channel_params(op: q.QuantOp, ndim: int, axis: int):
    """Per-output-channel (m0, shift) for s_x * s_w[c] / s_y, shaped for broadcasting."""
    x, w, y = _qp(op.operands[0]), _qp(op.operands[1]), _qp(op.results[0])
    real = x.scale[0] * np.asarray(w.scale, np.float64) / y.scale[0]
    m0, shift = nx.quantize_multipliers(real)
    shape = [1] * ndim
    shape[axis] = m0.size
    return m0.reshape(shape), shift.reshape(shape)


def _exact_float(op: q.QuantOp) -> type:
    """float32 when every partial sum of the dot product is provably below 2^24
    (exact in its 24-bit mantissa, whatever order BLAS sums in), else float64
    (exact below 2^53, and the accumulator proof caps sums at 2^47)."""
    bound = q.accumulator_bound(op)
    return np.float32 if bound is not None and bound < (1 << 24) else np.float64


def _const_values(v) -> np.ndarray | None:
    owner = v.owner
    return owner.values() if isinstance(owner, q.ConstantOp) else None


# ------------------------------------------------------------ edges


@_impl(q.QuantizeOp)
def _quantize(op):
    qp = _qp(op.results[0])
    return lambda ins: nx.quantize(ins[0], qp)


@_impl(q.DequantizeOp)
def _dequantize(op):
    qp = _qp(op.operands[0])
    return lambda ins: nx.dequantize(ins[0], qp)


@_impl(q.RequantizeOp)
def _requantize(op):
    a, y = _qp(op.operands[0]), _qp(op.results[0])
    m0, shift = nx.quantize_multiplier(a.scale[0] / y.scale[0])
    zp_in, zp_out = a.zero_point[0], y.zero_point[0]

    def run(ins):
        acc = ins[0].astype(np.int64) - zp_in
        return _finish(acc, m0, shift, 32, zp_out, y.qmin, y.qmax, y)

    return run


@_impl(q.ConstantOp)
def _constant(op):
    vals = op.values()
    return lambda ins: vals


# ---------------------------------------------------------- dot products


@_impl(q.ConvOp)
def _conv(op):
    x, y = _qp(op.operands[0]), _qp(op.results[0])
    w = _const_values(op.operands[1])
    bias = _const_values(op.operands[2]) if len(op.operands) > 2 else None
    nd = len(_shape(op.results[0]))
    m0, shift = _channel_params(op, nd, 1)
    lo, hi = _clamp_bounds(op)
    acc_bits = op.attr("acc_bits")
    attrs = _onnx_attrs(op, "strides", "pads", "dilations", "group", "auto_pad", "kernel_shape")
    conv = KERNELS["Conv"]
    zp = x.zero_point[0]
    ft = _exact_float(op)
    exact = {**attrs, EXACT: True}
    wc = None if w is None else w.astype(ft)
    bc = None if bias is None else bias.astype(ft)  # exact: |bias| is inside the proven bound

    def run(ins):
        wf = wc if wc is not None else ins[1].astype(ft)
        b = bc if bc is not None else (ins[2].astype(ft) if len(ins) > 2 else None)
        xf = ins[0].astype(ft) - ft(zp)  # padding with 0 here is padding with zp
        # every partial sum is an integer below the float's exact range: no rounding
        acc = conv([xf, wf] if b is None else [xf, wf, b], exact, 18)[0].astype(np.int64)
        return _finish(acc, m0, shift, acc_bits, y.zero_point[0], lo, hi, y)

    return run


@_impl(q.FullyConnectedOp)
def _fully_connected(op):
    x, y = _qp(op.operands[0]), _qp(op.results[0])
    w = _const_values(op.operands[1])
    bias = _const_values(op.operands[2]) if len(op.operands) > 2 else None
    nd = len(_shape(op.results[0]))
    m0, shift = _channel_params(op, nd, nd - 1)
    lo, hi = _clamp_bounds(op)
    acc_bits = op.attr("acc_bits")
    zp = x.zero_point[0]
    ft = _exact_float(op)
    wt = None if w is None else np.ascontiguousarray(w.astype(ft).T)
    bc = None if bias is None else bias.astype(ft)

    def run(ins):
        wf = wt if wt is not None else ins[1].astype(ft).T
        acc = (ins[0].astype(ft) - ft(zp)) @ wf
        b = bc if bc is not None else (ins[2].astype(ft) if len(ins) > 2 else None)
        if b is not None:
            acc += b
        return _finish(acc.astype(np.int64), m0, shift, acc_bits, y.zero_point[0], lo, hi, y)

    return run


# ------------------------------------------------------------ elementwise


@_impl(q.AddOp)
def _add(op):
    a, b, y = _qp(op.operands[0]), _qp(op.operands[1]), _qp(op.results[0])
    p = nx.add_params(a, b, y)
    lo, hi = _clamp_bounds(op)

    def run(ins):
        xa = (ins[0].astype(np.int64) - a.zero_point[0]) << p["left_shift"]
        xb = (ins[1].astype(np.int64) - b.zero_point[0]) << p["left_shift"]
        sa = nx.requantize32(xa, p["m_a"], p["s_a"])
        sb = nx.requantize32(xb, p["m_b"], p["s_b"])
        return _finish(sa + sb, p["m_y"], p["s_y"], 32, y.zero_point[0], lo, hi, y)

    return run


@_impl(q.MulOp)
@_impl(q.ChannelScaleOp)  # the same arithmetic; [N, C, 1, ...] broadcasts like quant.mul
def _mul(op):
    a, b, y = _qp(op.operands[0]), _qp(op.operands[1]), _qp(op.results[0])
    m0, shift = nx.quantize_multiplier(a.scale[0] * b.scale[0] / y.scale[0])
    lo, hi = _clamp_bounds(op)

    def run(ins):
        acc = (ins[0].astype(np.int64) - a.zero_point[0]) * (ins[1].astype(np.int64) - b.zero_point[0])
        return _finish(acc, m0, shift, 32, y.zero_point[0], lo, hi, y)

    return run


@_impl(q.ClampOp)
def _clamp(op):
    lo, hi = _clamp_bounds(op)
    return lambda ins: np.clip(ins[0], lo, hi).astype(ins[0].dtype)


@_impl(q.LookupOp)
def _lookup(op):
    table = op.attributes["table"].array
    qmin = _qp(op.operands[0]).qmin
    return lambda ins: table[ins[0].astype(np.int64) - qmin]


# ---------------------------------------------------------------- data movement


@_impl(q.ConcatOp)
def _concat(op):
    y = _qp(op.results[0])
    axis = op.attr("axis", 0)
    steps = []
    for v in op.operands:
        a = _qp(v)
        if a == y:
            steps.append(None)
        else:
            steps.append((a.zero_point[0], *nx.quantize_multiplier(a.scale[0] / y.scale[0])))

    def run(ins):
        parts = []
        for x, st in zip(ins, steps):
            if st is None:
                parts.append(x)
            else:
                zp_in, m0, shift = st
                parts.append(_finish(x.astype(np.int64) - zp_in, m0, shift, 32, y.zero_point[0], y.qmin, y.qmax, y))
        return np.concatenate(parts, axis=axis)

    return run


@_impl(q.MaxPoolOp)
def _max_pool(op):
    attrs = _onnx_attrs(op, "kernel_shape", "strides", "pads", "dilations", "ceil_mode", "auto_pad",
                        "storage_order")
    pool = KERNELS["MaxPool"]
    # integers are exact in float64, and max commutes with the conversion
    return lambda ins: pool([ins[0].astype(np.float64)], attrs, 18)[0].astype(ins[0].dtype)


@_impl(q.AvgPoolOp)
def _avg_pool(op):
    qp = _qp(op.operands[0])
    ks = list(op.attr("kernel_shape"))
    attrs = dict(_onnx_attrs(op, "strides", "pads", "auto_pad"), kernel_shape=ks)
    include_pad = bool(op.attr("count_include_pad", 0))
    conv = KERNELS["Conv"]
    zp = qp.zero_point[0]
    k = int(np.prod(ks))

    def run(ins):
        x = ins[0]
        c = x.shape[1]
        ones_k = np.ones((c, 1, *ks))
        g = dict(attrs, group=c)
        # window sums and valid-element counts as depthwise convolutions with a
        # kernel of ones: exact integers in float64, zero padding counts nothing
        sums = np.rint(conv([x.astype(np.float64) - zp, ones_k], g, 18)[0]).astype(np.int64)
        if include_pad:
            cnt = np.int64(k)
        else:
            cnt = np.rint(conv([np.ones((1, c, *x.shape[2:])), ones_k], g, 18)[0]).astype(np.int64)
        avg = np.where(sums >= 0, (sums + cnt // 2) // cnt, -((-sums + cnt // 2) // cnt))
        return nx.saturate(avg + zp, qp.qmin, qp.qmax, qp.bits, qp.signed)

    return run


@_impl(q.GlobalAvgPoolOp)
def _global_avg_pool(op):
    x, y = _qp(op.operands[0]), _qp(op.results[0])
    in_shape = _shape(op.operands[0])
    count = int(np.prod(in_shape[2:]))
    m0, shift = nx.quantize_multiplier(x.scale[0] / (y.scale[0] * count))

    def run(ins):
        axes = tuple(range(2, ins[0].ndim))
        acc = (ins[0].astype(np.int64) - x.zero_point[0]).sum(axis=axes, keepdims=True)
        return _finish(acc, m0, shift, 32, y.zero_point[0], y.qmin, y.qmax, y)

    return run


@_impl(q.PadOp)
def _pad(op):
    qp = _qp(op.operands[0])
    pads = op.attr("pads")
    value = op.attr("value", qp.zero_point[0])
    nd = len(pads) // 2
    width = [(pads[i], pads[i + nd]) for i in range(nd)]

    def run(ins):
        return np.pad(ins[0], width, mode="constant", constant_values=value).astype(ins[0].dtype)

    return run


@_impl(q.ResizeOp)
def _resize(op):
    out_shape = _shape(op.results[0])
    attrs = _onnx_attrs(op, "coordinate_transformation_mode", "nearest_mode", "mode")
    resize = KERNELS["Resize"]

    def run(ins):
        x = ins[0]
        sizes = np.array((x.shape[0], *out_shape[1:]), np.int64)
        y = resize([x.astype(np.float64), None, None, sizes], attrs, 18)[0]
        return y.astype(x.dtype)

    return run


@_impl(q.ReshapeOp)
def _reshape(op):
    out_shape = _shape(op.results[0])
    in_shape = _shape(op.operands[0])

    def run(ins):
        x = ins[0]
        if x.shape[0] != in_shape[0] and in_shape[0] == 1 and out_shape and out_shape[0] == 1:
            return x.reshape((x.shape[0], *out_shape[1:]))  # a batch of samples
        return x.reshape(out_shape)

    return run


@_impl(q.TransposeOp)
def _transpose(op):
    perm = op.attr("perm")
    return lambda ins: np.ascontiguousarray(np.transpose(ins[0], perm))


@_impl(q.SoftmaxOp)
def _softmax(op):
    table = op.attributes["table"].array.astype(np.int64)
    y = _qp(op.results[0])
    axis = op.attr("axis")
    k = q.SOFTMAX_RECIPROCAL_BITS
    shift = k - y.bits

    def run(ins):
        x = ins[0].astype(np.int64)
        e = table[x.max(axis=axis, keepdims=True) - x]
        total = e.sum(axis=axis, keepdims=True)  # < 2^31: the verifier bounds table[0] * n
        recip = ((1 << k) + total // 2) // total
        codes = y.zero_point[0] + ((e * recip + (1 << (shift - 1))) >> shift)
        return nx.saturate(codes, y.qmin, y.qmax, y.bits, y.signed)

    return run


def _window(op: q.QuantOp, shape: tuple[int, ...], batch: int) -> tuple[slice, ...]:
    """The index of the op's window (`offsets`, `shape`); a batch of samples keeps axis 0 whole."""
    offs = op.attr("offsets")
    idx = [slice(o, o + d) for o, d in zip(offs, shape)]
    if batch != shape[0]:
        idx[0] = slice(None)
    return tuple(idx)


@_impl(q.SliceOp)
def _slice(op):
    out_shape, in_shape = _shape(op.results[0]), _shape(op.operands[0])

    def run(ins):
        x = ins[0]
        idx = _window(op, out_shape, out_shape[0] if x.shape[0] == in_shape[0] else x.shape[0])
        return np.ascontiguousarray(x[idx])

    return run


@_impl(q.InsertSliceOp)
def _insert_slice(op):
    y = _qp(op.results[0])
    out_shape, tile_shape = _shape(op.results[0]), _shape(op.operands[-1])
    has_dest = len(op.operands) == 2

    def run(ins):
        tile = ins[-1]
        n = tile.shape[0] if tile.shape[0] != tile_shape[0] else out_shape[0]
        if has_dest:
            out = ins[0].copy()
        else:
            out = np.full((n, *out_shape[1:]), y.zero_point[0], nx.storage_dtype(y.bits, y.signed))
        out[_window(op, tile_shape, tile.shape[0])] = tile
        return out

    return run
