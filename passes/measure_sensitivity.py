"""`measure-sensitivity`: QuantuneV2-style local metrics from exactly two
inferences per calibration sample — one float, one quantized.

For every calibrated op and every candidate width b it stores (all in dB or
mean squared error per output element, so they print and re-parse):

    qcc.sensitivity = {
      w_sqnr  = {i4 = .., i8 = ..},   weight SQNR at b bits (per-channel symmetric)
      a_sqnr  = {i4 = .., i8 = ..},   SQNR of the op's float output quantized at b bits
      w_mse   = {i4 = .., i8 = ..},   output error its weights alone cause at b bits
      a_mse   = {i4 = .., i8 = ..},   output error its own activation quantization causes
      signal  = mean square of the float output,
      ref_sqnr = SQNR of the quantized inference's output at this op (reference widths)
    }

Everything except `ref_sqnr` is local: it uses the op's float inputs and only
the op's own quantization. `w_mse` comes from the float inference's
per-input-channel second moments E[x_j^2]: a weight error dW adds noise of
variance sum_j,k dW[c,j,k]^2 E[x_j^2] to output channel c (inputs treated as
uncorrelated), so no extra inference per width is needed. `ref_sqnr` comes from
the one quantized inference per sample (every op at the widest candidate):
the error each op actually sees with everything before it quantized.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import DictionaryAttr, FloatAttr, IntegerAttr, ModuleOp, f64, i64
from xdsl.ir import Operation
from xdsl.passes import ModulePass

from qcc import numerics as nx
from qcc.dialects import onnx as donnx
from qcc.dialects.quant import QuantOp, qparams_of
from qcc.errors import QccError
from qcc.passes.calibrate import (
    RANGES,
    activation_widths,
    load_calibration_file,
    parse_bits,
    range_key,
    synthetic_inputs,
    tensor_range,
)

SENSITIVITY = "qcc.sensitivity"
WEIGHTED = {"Conv", "Gemm", "MatMul"}


def weight_matrix(op: donnx.OnnxOp) -> np.ndarray | None:
    """The constant weights of a Conv/Gemm/MatMul as [out_channels, ...], else None."""
    t = op.onnx_type
    if t not in WEIGHTED or len(op.inputs) < 2:
        return None
    w = donnx.constant_array(op.inputs[1])
    if w is None or w.dtype.kind != "f":
        return None
    if t == "Conv":
        return w
    if w.ndim != 2:
        return None
    if t == "Gemm":
        return w if op.onnx_attrs().get("transB", 0) else w.T
    return w.T  # MatMul: x @ W, W [K, N]


def sqnr_db(signal: float, noise: float) -> float:
    if noise <= 0:
        return 200.0
    if signal <= 0:
        return -200.0
    return float(10 * math.log10(signal / noise))


def _weight_noise(op: donnx.OnnxOp, w: np.ndarray, bits: int, x_ms: np.ndarray | None) -> tuple[float, float]:
    """(weight SQNR in dB, output noise power per element) at `bits`."""
    qp = nx.weight_qparams(w, bits, axis=0)
    dw = (w.astype(np.float64) - nx.dequantize(nx.quantize(w, qp, narrow=True), qp).astype(np.float64))
    sig = float(np.mean(np.square(w, dtype=np.float64)))
    noise = float(np.mean(np.square(dw)))
    if x_ms is None:
        return sqnr_db(sig, noise), 0.0
    if op.onnx_type == "Conv":
        # dW [M, C/g, *k]; input channel of (m, j) is (m // (M/g)) * (C/g) + j
        m_out, cg = dw.shape[0], dw.shape[1]
        g = max(1, x_ms.size // cg)
        per_in = np.square(dw).reshape(m_out, cg, -1).sum(axis=2)  # [M, C/g]
        group_of = np.arange(m_out) // max(1, m_out // g)
        ms = x_ms.reshape(g, cg)[group_of]  # [M, C/g]
        out_noise = float(np.mean((per_in * ms).sum(axis=1)))
    else:
        out_noise = float(np.mean((np.square(dw) * x_ms.reshape(1, -1)).sum(axis=1)))
    return sqnr_db(sig, noise), out_noise


class _Accumulator:
    """Per-op running sums over calibration chunks."""

    def __init__(self, widths: Sequence[int]):
        self.widths = widths
        self.sig = 0.0
        self.n = 0
        self.act_noise = {b: 0.0 for b in widths}
        self.in_ms: np.ndarray | None = None
        self.in_n = 0
        self.ref_sig = 0.0
        self.ref_noise = 0.0


def _channel_ms(x: np.ndarray) -> np.ndarray:
    """Mean square per channel (axis 1 for rank >= 2 tensors, last axis for FC inputs)."""
    x = np.asarray(x, np.float64)
    if x.ndim >= 3:
        return np.mean(np.square(x), axis=tuple(i for i in range(x.ndim) if i != 1))
    return np.mean(np.square(x), axis=tuple(range(x.ndim - 1)))


def measure(module: ModuleOp, inputs: Mapping[str, np.ndarray], bits: Sequence[int], *, chunk: int = 32,
            progress=None) -> dict[Operation, dict]:
    """Runs the two inferences per sample and returns the metrics per op."""
    from qcc.interpreter import _plan, batchable, io_names, main_func, run_main
    from qcc.passes.lower_to_quant import A_BITS, W_BITS, LowerToQuantPass

    a_widths = activation_widths(bits)
    w_widths = tuple(bits)
    fn = main_func(module)
    ops = [op for op in fn.body.walk() if isinstance(op, donnx.OnnxOp) and RANGES in op.attributes]
    acc = {op: _Accumulator(a_widths) for op in ops}
    by_name = {op.node_name: op for op in ops if op.node_name}
    weights = {op: weight_matrix(op) for op in ops}

    # the quantized twin at the widest candidate widths
    qmod = module.clone()
    for o in qmod.walk():
        if isinstance(o, donnx.OnnxOp) and RANGES in o.attributes:
            o.attributes[A_BITS] = IntegerAttr(max(a_widths), i64)
            o.attributes[W_BITS] = IntegerAttr(max(w_widths), i64)
    LowerToQuantPass().apply(Context(), qmod)

    in_names, _ = io_names(fn)
    n = min(len(v) for v in inputs.values())
    use_batch = batchable(module) and batchable(qmod)
    step = chunk if use_batch else 1
    fplan, qplan = _plan(module), _plan(qmod)
    ops_set = set(ops)
    producers = {op: op.inputs[0].owner if weights[op] is not None else None for op in ops}
    arg_index = {a: i for i, a in enumerate(fn.args)}
    done = 0
    while done < n:
        k = min(step, n - done)
        args = [np.asarray(inputs[nm][done: done + k]) for nm in in_names]
        if not use_batch:
            args = [a.reshape(tuple(x.type.get_shape())) for a, x in zip(args, fn.args)]
        float_out: dict[str, np.ndarray] = {}
        seen: dict[Operation, np.ndarray] = {}

        def observe_float(op, results):
            if not results or op not in ops_set and not any(p is op for p in producers.values()):
                return
            y = np.asarray(results[0])
            seen[op] = y
            if op not in ops_set:
                return
            a = acc[op]
            yd = y.astype(np.float64)
            a.sig += float(np.sum(np.square(yd)))
            a.n += y.size
            for b in a_widths:
                r = tensor_range(op.attributes, b)
                if r is not None:
                    qp = nx.choose_qparams(*r, b, signed=True, symmetric=(b == 16))
                    a.act_noise[b] += float(np.sum(np.square(yd - nx.fake_quantize(yd, qp))))
            if op.node_name:
                float_out[op.node_name] = y

        run_main(module, args, batch=k if use_batch else None, observer=observe_float, plan=fplan)
        # per-input-channel second moments of the weighted ops' inputs
        for op in ops:
            if weights[op] is None:
                continue
            src = op.inputs[0]
            x = seen.get(src.owner) if isinstance(src.owner, Operation) else args[arg_index[src]]
            if x is None:
                continue
            ms = _channel_ms(x)
            a = acc[op]
            a.in_ms = ms * x.size if a.in_ms is None else a.in_ms + ms * x.size
            a.in_n += x.size

        def observe_quant(op, results):
            if not isinstance(op, QuantOp) or not results or op.name in ("quant.constant", "quant.quantize"):
                return
            name = op.node_name
            f = float_out.get(name)
            if f is None:
                return
            qp = qparams_of(op.results[0].type)
            if qp is None:
                return
            yq = nx.dequantize(np.asarray(results[0]), qp).astype(np.float64)
            if yq.shape != f.shape:
                return
            a = acc[by_name[name]]
            a.ref_sig += float(np.sum(np.square(f.astype(np.float64))))
            a.ref_noise += float(np.sum(np.square(f.astype(np.float64) - yq)))

        run_main(qmod, args, batch=k if use_batch else None, observer=observe_quant, plan=qplan)
        done += k
        if progress:
            progress(done, n)

    metrics = {}
    for op in ops:
        a = acc[op]
        if a.n == 0:
            continue
        signal = a.sig / a.n
        m: dict = {"signal": signal, "a_sqnr": {}, "a_mse": {}, "w_sqnr": {}, "w_mse": {}}
        for b in a_widths:
            m["a_mse"][b] = a.act_noise[b] / a.n
            m["a_sqnr"][b] = sqnr_db(a.sig, a.act_noise[b])
        w = weights[op]
        if w is not None:
            x_ms = None if a.in_ms is None else a.in_ms / a.in_n
            for b in w_widths:
                m["w_sqnr"][b], m["w_mse"][b] = _weight_noise(op, w, b, x_ms)
        m["ref_sqnr"] = sqnr_db(a.ref_sig, a.ref_noise) if a.ref_sig > 0 else None
        metrics[op] = m
    return metrics


def _f(x: float) -> FloatAttr:
    return FloatAttr(float(x), f64)


def metrics_attr(m: dict) -> DictionaryAttr:
    d = {"signal": _f(m["signal"])}
    for key in ("w_sqnr", "a_sqnr", "w_mse", "a_mse"):
        if m[key]:
            d[key] = DictionaryAttr({range_key(b): _f(v) for b, v in m[key].items()})
    if m.get("ref_sqnr") is not None:
        d["ref_sqnr"] = _f(m["ref_sqnr"])
    return DictionaryAttr(d)


def read_metrics(op: Operation) -> dict | None:
    """Inverse of `metrics_attr`: {'signal': .., 'w_sqnr': {bits: ..}, ...}."""
    a = op.attributes.get(SENSITIVITY)
    if not isinstance(a, DictionaryAttr):
        return None
    out: dict = {"w_sqnr": {}, "a_sqnr": {}, "w_mse": {}, "a_mse": {}}
    for k, v in a.data.items():
        if isinstance(v, DictionaryAttr):
            out[k] = {int(b[1:]): float(x.value.data) for b, x in v.data.items()}
        else:
            out[k] = float(v.value.data)
    return out


@dataclass(frozen=True)
class MeasureSensitivityPass(ModulePass):
    """Two inferences per sample over `data` (or the synthetic fallback)."""

    name = "measure-sensitivity"

    data: str = ""
    bits: str = "4,8"
    samples: int = 0
    chunk: int = 32

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        bits = parse_bits(self.bits)
        inputs = load_calibration_file(self.data) if self.data else synthetic_inputs(op)
        if self.samples:
            inputs = {k: v[: self.samples] for k, v in inputs.items()}
        if not any(RANGES in o.attributes for o in op.walk()):
            raise QccError("measure-sensitivity needs calibrated IR: run 'calibrate' first")
        from qcc.passes.calibrate import _tty_progress

        for o, m in measure(op, inputs, bits, chunk=self.chunk, progress=_tty_progress("sensitivity")).items():
            o.attributes[SENSITIVITY] = metrics_attr(m)

