"""`measure-sensitivity`: QuantuneV2-style local metrics from exactly two
inferences per calibration sample — one float, one quantized.

For every calibrated op and every candidate width b it stores (dB, or mean
squared error per output element), so they print and re-parse:

    qcc.sensitivity = {
      w_sqnr  = {i4 = .., i8 = ..},   weight SQNR at b bits (per-channel symmetric)
      a_sqnr  = {i4 = .., i8 = ..},   SQNR of the op's float output quantized at b bits
      w_mse   = {i4 = .., i8 = ..},   output error its weights alone cause at b bits
      a_mse   = {i4 = .., i8 = ..},   output error its own activation quantization causes
      signal  = mean square of the float output,
      ref_sqnr = SQNR of the quantized inference's output at this op (widest widths)
    }

The float inference is the one calibration runs (`calibrate.record_float`):
its reservoir sample of every tensor gives a_sqnr/a_mse, its per-channel
second moments E[x_j^2] give w_mse — a weight error dW adds noise of variance
sum_j,k dW[c,j,k]^2 E[x_j^2] to output channel c (inputs treated as
uncorrelated), so no extra inference per width is needed — and its values at
fixed probe positions are what the one quantized inference per sample (every
op at the widest candidate) is compared with for ref_sqnr: the error each op
really sees with everything before it quantized. Run on its own, the pass
makes that float record itself: still two inferences per sample.
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
from qcc.dialects.quant import ConstantOp, QuantizeOp, QuantOp, qparams_of
from qcc.errors import QccError
from qcc.interpreter import single_thread_blas
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


def _value_key(v):
    """FloatRecord key of an SSA value: its defining op, or the block argument itself."""
    return v.owner if isinstance(v.owner, Operation) else v


@single_thread_blas
def measure(module: ModuleOp, inputs: Mapping[str, np.ndarray], bits: Sequence[int], *, chunk: int = 32,
            progress=None, record=None) -> dict[Operation, dict]:
    """Metrics per calibrated op. The float side comes from `record` (the float
    inference calibration already ran; made here if None), the quantized side
    from one quantized inference per sample at the widest candidate widths."""
    from qcc.interpreter import _plan, batchable, io_names, main_func, run_main
    from qcc.passes.calibrate import record_float
    from qcc.passes.lower_to_quant import A_BITS, W_BITS, LowerToQuantPass

    if record is None:
        record = record_float(module, inputs, chunk=chunk, progress=progress)
    a_widths = activation_widths(bits)
    w_widths = tuple(bits)
    fn = main_func(module)
    ops = [op for op in fn.body.walk() if isinstance(op, donnx.OnnxOp) and RANGES in op.attributes]

    # the quantized twin at the widest candidate widths
    qmod = module.clone()
    for o in qmod.walk():
        if isinstance(o, donnx.OnnxOp) and RANGES in o.attributes:
            o.attributes[A_BITS] = IntegerAttr(max(a_widths), i64)
            o.attributes[W_BITS] = IntegerAttr(max(w_widths), i64)
    by_name = {op.node_name: op for op in ops if op.node_name}
    from qcc.passes.lower_to_quant import range_source

    fused_activation = {}
    for op in ops:
        src = range_source(op)
        if src is not op and src in record.probe_idx:
            fused_activation[op] = src
    LowerToQuantPass().apply(Context(), qmod)

    in_names, _ = io_names(fn)
    n = min(len(v) for v in inputs.values())
    use_batch = batchable(qmod)
    step = chunk if use_batch else 1
    qplan = _plan(qmod)
    ref_sig = {op: 0.0 for op in ops}
    ref_noise = {op: 0.0 for op in ops}
    done = 0
    while done < n:
        k = min(step, n - done)
        args = [np.asarray(inputs[nm][done: done + k]) for nm in in_names]
        if not use_batch:
            args = [a.reshape(tuple(x.type.get_shape())) for a, x in zip(args, fn.args)]
        lo = done

        def observe_quant(op, results):
            if not isinstance(op, QuantOp) or not results or isinstance(op, (ConstantOp, QuantizeOp)):
                return
            src = by_name.get(op.node_name)
            qp = qparams_of(op.results[0].type)
            if src is None or qp is None:
                return
            idx = record.probe_idx.get(src)
            f = record.probe(src)
            if idx is None or f is None:
                return
            yq = np.asarray(results[0])
            flat = yq.reshape(yq.shape[0], -1) if use_batch else yq.reshape(1, -1)
            if flat.shape[1] <= (idx.max() if idx.size else 0):
                return
            yq = nx.dequantize(flat[:, idx], qp).astype(np.float64)
            fr = f[lo: lo + yq.shape[0]].astype(np.float64)
            act = fused_activation.get(src)
            if act is not None:  # the integer result already holds the fused ReLU/Clip's output
                fr = record.probe(act)[lo: lo + yq.shape[0]].astype(np.float64)
            if fr.shape != yq.shape:
                return
            ref_sig[src] += float(np.sum(np.square(fr)))
            ref_noise[src] += float(np.sum(np.square(fr - yq)))

        run_main(qmod, args, batch=k if use_batch else None, observer=observe_quant, plan=qplan)
        done += k
        if progress:
            progress(done, n)

    metrics = {}
    for op in ops:
        # a result whose ReLU/Clip is fused is quantized as that activation's output
        act = fused_activation.get(op, op)
        st = record.stats.get(act)
        if st is None or st.count == 0:
            continue
        sample = st.sample().astype(np.float64)
        signal = float(np.mean(np.square(sample))) if sample.size else 0.0
        m: dict = {"signal": signal, "a_sqnr": {}, "a_mse": {}, "w_sqnr": {}, "w_mse": {}}
        for b in a_widths:
            r = tensor_range(act.attributes, b)
            if r is None:
                continue
            qp = nx.choose_qparams(*r, b, signed=True, symmetric=(b == 16))
            noise = float(np.mean(np.square(sample - nx.fake_quantize(sample, qp)))) if sample.size else 0.0
            m["a_mse"][b] = noise
            m["a_sqnr"][b] = sqnr_db(signal, noise)
        w = weight_matrix(op)
        if w is not None:
            x_ms = record.channel_ms(_value_key(op.inputs[0]))
            for b in w_widths:
                m["w_sqnr"][b], m["w_mse"][b] = _weight_noise(op, w, b, x_ms)
        m["ref_sqnr"] = sqnr_db(ref_sig[op], ref_noise[op]) if ref_sig[op] > 0 else None
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

