"""`calibrate`: float inference over calibration data; every float tensor gets
its quantization range for each candidate activation width.

    qcc-opt model.mlir -p 'calibrate{data="calib.npz" method="mse" bits="4,8"}'

Writes, on every op with a float tensor result (and on @main's arguments):
    qcc.ranges = {i4 = array<f64: lo, hi>, i8 = array<f64: lo, hi>}
    qcc.stats  = array<f64: min, max, mean_square>
and on the module `qcc.calibration = {method, samples, source}`. The statistics
come from `qcc.calibration_ranges` (streaming min/max and a reservoir sample).

Without data (`data=""`), the fallback runs the model on `synthetic` samples of
N(0, 1) noise (fixed seed) and records `source = "synthetic"`: the build works,
the report flags that its ranges do not reflect real inputs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import (
    ArrayAttr,
    BFloat16Type,
    DenseArrayBase,
    DictionaryAttr,
    Float16Type,
    Float32Type,
    Float64Type,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    TensorType,
    f64,
    i64,
)
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from qcc.calibration_ranges import TensorStats, choose_range
from qcc.errors import QccError
from qcc.interpreter import single_thread_blas

RANGES = "qcc.ranges"
STATS = "qcc.stats"
CALIBRATION = "qcc.calibration"
ACTIVATION_WIDTHS = (4, 8, 16)


def parse_bits(text: str | Sequence[int]) -> tuple[int, ...]:
    """'4,8' -> (4, 8); every width must be one of 2, 4, 8, 16."""
    try:
        bits = tuple(sorted({int(b) for b in (text.split(",") if isinstance(text, str) else text)}))
    except ValueError:
        raise QccError(f"--bits '{text}': expected a comma-separated list of 2, 4, 8, 16") from None
    if not bits or any(b not in (2, 4, 8, 16) for b in bits):
        raise QccError(f"--bits '{text}': widths must be among 2, 4, 8, 16")
    return bits


def activation_widths(bits: Sequence[int]) -> tuple[int, ...]:
    """Activations are 4, 8 or 16 bits; a 2-bit candidate applies to weights only."""
    a = tuple(b for b in bits if b in ACTIVATION_WIDTHS)
    return a or (8,)


def _is_float_tensor(t) -> bool:
    return isinstance(t, TensorType) and isinstance(t.element_type, Float16Type | Float32Type | Float64Type
                                                   | BFloat16Type)


def range_key(bits: int) -> str:
    return f"i{bits}"


def _channel_ms(x: np.ndarray) -> np.ndarray:
    """Sum of squares per channel (axis 1 of a rank >= 3 tensor, else the last axis)."""
    x = np.asarray(x, np.float32)
    if x.ndim >= 3:
        x = np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)
        return np.einsum("ij,ij->i", x, x, dtype=np.float64)
    x = x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)
    return np.einsum("ij,ij->j", x, x, dtype=np.float64)


class FloatRecord:
    """What one float inference per sample leaves behind, for calibration and for the
    float side of the sensitivity metrics: per tensor its streaming statistics,
    its per-channel mean square, and its values at a few fixed positions of
    every sample (to compare with the quantized inference later)."""

    PROBE_BUDGET = 1 << 22  # floats kept for the comparison, over all tensors and samples
    SAMPLE = 1 << 15  # reservoir size per tensor (percentile/mse/entropy ranges, activation SQNR)
    SAMPLE_MINMAX = 1 << 13  # minmax ranges come from exact min/max; the sample only feeds SQNR estimates

    def __init__(self, n_samples: int, n_tensors: int, sample: int | None = None):
        self.sample_size = sample or self.SAMPLE
        self.stats: dict[Any, TensorStats] = {}
        self.channel_sq: dict[Any, np.ndarray] = {}
        self.channel_n: dict[Any, int] = {}
        self.probe_idx: dict[Any, np.ndarray] = {}
        self.probe_vals: dict[Any, list[np.ndarray]] = {}
        self.per_tensor = int(np.clip(self.PROBE_BUDGET // max(1, n_samples * n_tensors), 16, 1024))

    def add(self, key, y: np.ndarray, batched: bool, channels: bool = True) -> None:
        y = np.asarray(y)
        st = self.stats.get(key)
        if st is None:
            st = self.stats[key] = TensorStats(max_samples=self.sample_size)
        st.update(y)
        self._probe(key, y, batched)
        if not channels:
            return
        sq = _channel_ms(y)
        if key in self.channel_sq and self.channel_sq[key].shape == sq.shape:
            self.channel_sq[key] += sq
            self.channel_n[key] += y.size // max(1, sq.size)
        else:
            self.channel_sq[key] = sq
            self.channel_n[key] = y.size // max(1, sq.size)

    def _probe(self, key, y: np.ndarray, batched: bool) -> None:
        flat = y.reshape(y.shape[0], -1) if batched and y.ndim else y.reshape(1, -1)
        idx = self.probe_idx.get(key)
        if idx is None:
            m = flat.shape[1]
            rng = np.random.default_rng(m)  # same positions for tensors of the same size
            idx = np.sort(rng.choice(m, size=min(m, self.per_tensor), replace=False)) if m else np.zeros(0, int)
            self.probe_idx[key] = idx
        self.probe_vals.setdefault(key, []).append(flat[:, idx].astype(np.float32))

    def channel_ms(self, key) -> np.ndarray | None:
        if key not in self.channel_sq:
            return None
        return self.channel_sq[key] / max(1, self.channel_n[key])

    def probe(self, key) -> np.ndarray | None:
        v = self.probe_vals.get(key)
        return None if v is None else np.concatenate(v)


@single_thread_blas
def record_float(module: ModuleOp, inputs: Mapping[str, np.ndarray], *, chunk: int = 64,
                 progress: Callable[[int, int], None] | None = None, method: str = "") -> FloatRecord:
    """One float inference per sample; keys are ops (their first result) and @main arguments."""
    from qcc.interpreter import batchable, main_func, run_samples

    fn = main_func(module)
    n = min((len(v) for v in inputs.values()), default=0)
    ops = [op for op in fn.body.walk() if op.results and _is_float_tensor(op.results[0].type)]
    rec = FloatRecord(n, len(ops) + len(fn.args), FloatRecord.SAMPLE_MINMAX if method == "minmax" else None)
    batched = batchable(module)
    # per-channel second moments only where a weighted op reads them (sensitivity's w_mse)
    feeds_weights = {op.operands[0].owner if isinstance(op.operands[0].owner, Operation) else op.operands[0]
                     for op in ops if getattr(op, "onnx_type", "") in ("Conv", "Gemm", "MatMul") and op.operands}

    def observe(op: Operation, results) -> None:
        if not op.results or not _is_float_tensor(op.results[0].type) or getattr(op, "onnx_type", "") == "Constant":
            return
        if not results or results[0] is None:
            return
        y = np.asarray(results[0])
        if not batched:
            y = y.reshape(1, *y.shape[1:]) if y.ndim and y.shape[0] == 1 else y[None]
        rec.add(op, y, True, op in feeds_weights)

    from qcc.interpreter import io_names

    names, _ = io_names(fn)
    for name, a in zip(names, fn.args):
        if _is_float_tensor(a.type):
            rec.add(a, np.asarray(inputs[name], np.float32), True, a in feeds_weights)
    run_samples(module, inputs, chunk=chunk, progress=progress, observer=observe)
    return rec


def collect_stats(module: ModuleOp, inputs: Mapping[str, np.ndarray], *, chunk: int = 64,
                  progress: Callable[[int, int], None] | None = None
                  ) -> tuple[dict[Operation, TensorStats], list[TensorStats]]:
    """Statistics of every op's first float result and of every @main argument."""
    from qcc.interpreter import main_func

    rec = record_float(module, inputs, chunk=chunk, progress=progress)
    fn = main_func(module)
    return ({k: v for k, v in rec.stats.items() if isinstance(k, Operation)},
            [rec.stats.get(a, TensorStats()) for a in fn.args])


def _ranges_attr(stats: TensorStats, method: str, widths: Sequence[int]) -> DictionaryAttr:
    out = {}
    for b in widths:
        lo, hi = choose_range(stats, method, b, signed=True, symmetric=(b == 16))
        out[range_key(b)] = DenseArrayBase.from_list(f64, [float(lo), float(hi)])
    return DictionaryAttr(out)


def _stats_attr(stats: TensorStats) -> DenseArrayBase:
    s = stats.sample()
    ms = float(np.mean(np.square(s, dtype=np.float64))) if s.size else 0.0
    return DenseArrayBase.from_list(f64, [float(stats.min), float(stats.max), ms])


def synthetic_inputs(module: ModuleOp, samples: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """N(0, 1) noise shaped like @main's inputs: the no-data fallback."""
    from qcc.dialects.onnx import numpy_dtype
    from qcc.interpreter import io_names, main_func

    fn = main_func(module)
    rng = np.random.default_rng(seed)
    names, _ = io_names(fn)
    out = {}
    for n, a in zip(names, fn.args):
        shape = tuple(a.type.get_shape())
        per = shape[1:] if shape and shape[0] == 1 else shape
        dt = numpy_dtype(a.type.element_type)
        x = rng.standard_normal((samples, *per))
        out[n] = x.astype(dt) if dt.kind == "f" else np.zeros((samples, *per), dt)
    return out


def annotate(module: ModuleOp, op_stats: Mapping[Operation, TensorStats], arg_stats: Sequence[TensorStats],
             method: str, widths: Sequence[int], samples: int, source: str) -> None:
    from qcc.interpreter import main_func

    fn = main_func(module)
    for op, st in op_stats.items():
        op.attributes[RANGES] = _ranges_attr(st, method, widths)
        op.attributes[STATS] = _stats_attr(st)
    arg_attrs = list(fn.arg_attrs.data) if fn.arg_attrs is not None else [DictionaryAttr({}) for _ in fn.args]
    for i, (a, st) in enumerate(zip(fn.args, arg_stats)):
        if _is_float_tensor(a.type) and st.count:
            d = dict(arg_attrs[i].data)
            d[RANGES] = _ranges_attr(st, method, widths)
            d[STATS] = _stats_attr(st)
            arg_attrs[i] = DictionaryAttr(d)
    fn.arg_attrs = ArrayAttr(arg_attrs)
    module.attributes[CALIBRATION] = DictionaryAttr({
        "method": StringAttr(method), "samples": IntegerAttr(samples, i64), "source": StringAttr(source)})


def arg_value_attrs(module: ModuleOp, v: SSAValue) -> dict:
    """The attribute dict carrying ranges for `v` (an op result or a @main argument)."""
    from qcc.interpreter import main_func

    owner = v.owner
    if isinstance(owner, Operation):
        return owner.attributes
    fn = main_func(module)
    return dict(fn.arg_attrs.data[v.index].data) if fn.arg_attrs is not None else {}


def tensor_range(attrs, bits: int) -> tuple[float, float] | None:
    r = attrs.get(RANGES)
    if r is None:
        return None
    a = r.data.get(range_key(bits))
    if a is None:
        return None
    lo, hi = a.iter_values()
    return float(lo), float(hi)


def load_calibration_file(path: str) -> dict[str, np.ndarray]:
    from qcc.cli import load_npz

    return load_npz(path)


@dataclass(frozen=True)
class CalibratePass(ModulePass):
    """Float inference over `data` (an .npz keyed by input name); ranges by `method`."""

    name = "calibrate"

    data: str = ""
    method: str = "minmax"
    bits: str = "4,8"
    samples: int = 0  # 0: all samples in the file
    chunk: int = 64

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from qcc.calibration_ranges import METHODS

        if self.method not in METHODS:
            raise QccError(f"calibration method '{self.method}' is not one of {', '.join(METHODS)}")
        widths = activation_widths(parse_bits(self.bits))
        if self.data:
            inputs = load_calibration_file(self.data)
            source = self.data
        else:
            inputs = synthetic_inputs(op)
            source = "synthetic"
        if self.samples:
            inputs = {k: v[: self.samples] for k, v in inputs.items()}
        n = min((len(v) for v in inputs.values()), default=0)
        if n == 0:
            raise QccError(f"calibration data {source}: no samples")
        progress = _tty_progress("calibrate")
        op_stats, arg_stats = collect_stats(op, inputs, chunk=self.chunk, progress=progress)
        annotate(op, op_stats, arg_stats, self.method, widths, n, source)


def _tty_progress(label: str) -> Callable[[int, int], None] | None:
    if not sys.stderr.isatty():
        return None
    from qcc.cli import Progress

    return Progress(label)

