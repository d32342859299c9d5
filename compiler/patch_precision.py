"""Value-driven per-patch precision (QuantMCU) of the patch stage, in the interpreter.

QuantMCU (Wang et al. 2023) observes that in patch-based inference most patches'
feature maps hold no outliers, and that those patches can be stored and computed
at a lower width; only the patches with outliers need 8 bits. qcc models this
in the integer interpreter:

- State in the IR: a stage op whose result tiles may be narrowed carries
  `qcc.patch_bits = array<i64: bits, threshold>`. At run time, per patch and per
  sample, the tile's cheap outlier test is max |q - zp| > threshold: an outlier
  tile keeps its 8-bit values; any other is snapped to the `bits`-bit grid
  zp + d*k, k in [-2^(bits-1), 2^(bits-1) - 1], d = ceil(threshold / (2^(bits-1) - 1)),
  with k = round-half-away(|q - zp| / d) * sign: integer arithmetic only, so a C
  backend can reproduce it bit for bit (that emission is not written yet).
- `assign` calibrates and chooses: the threshold of a tensor is the
  `outlier_quantile` quantile of its tiles' peaks |q - zp| on the calibration
  set (so about 1 - quantile of its tiles are outliers); candidates are the
  stage's 8-bit tensors read by a stage convolution (their width sets that
  conv's BitOPs). Each gets the score BitOPs saved / entropy lost (the entropy
  change of the tensor's non-outlier values from 8 bits to `bits`, measured on
  the calibration set); tensors are narrowed in score order while the summed
  entropy loss stays within `max_entropy_loss` bits.

`assign` returns the fraction of outlier tiles on the calibration set and the
BitOPs saved (`bitops_saved`, against the 8-bit patch-based model). It is a
library function (used by tools/bench_patch.py), not a `qcc` option: the C
backend does not emit the per-tile test yet, and a compiled model's C must
match its interpreter bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from xdsl.dialects.builtin import DenseArrayBase, ModuleOp, i64

from qcc import receptive_field as rf
from qcc.dialects import quant as q
from qcc.errors import QccError

PRECISION_ATTR = "qcc.patch_bits"


def step(bits: int, threshold: int) -> int:
    return max(1, -(-int(threshold) // ((1 << (bits - 1)) - 1)))


def snap(t: np.ndarray, zp: int, bits: int, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """(tile with every non-outlier sample on the low-bit grid, outlier flag per sample)."""
    v = t.astype(np.int64) - zp
    outlier = np.abs(v).reshape(len(v), -1).max(axis=1) > threshold
    d = step(bits, threshold)
    k = np.sign(v) * ((np.abs(v) + d // 2) // d)
    k = np.clip(k, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    low = (zp + k * d).astype(t.dtype)
    return np.where(outlier.reshape(-1, *([1] * (t.ndim - 1))), t, low), outlier


def _entropy(hist: np.ndarray) -> float:
    p = hist[hist > 0] / max(1, hist.sum())
    return float(-(p * np.log2(p)).sum())


def candidates(a: rf.Analysis) -> list:
    """Stage ops (not the split) with an 8-bit result read by a stage conv."""
    stage = set(a.stage)
    out = []
    for op in a.stage:
        r = op.results[0]
        if r is a.split_value or r not in a.regions:
            continue
        qp = q.qparams_of(r.type)
        if qp is None or qp.bits != 8 or qp.axis is not None:
            continue
        if any(isinstance(u.operation, q.ConvOp) and u.operation in stage for u in r.uses):
            out.append(op)
    return out


def assign(module: ModuleOp, inputs: Mapping[str, np.ndarray], bits: int = 4, outlier_quantile: float = 0.9,
           max_entropy_loss: float = 1.0) -> dict:
    """Calibrates and marks the narrowed tensors of the module's patch stage; returns the report section."""
    from qcc.interpreter import _plan, run_samples
    from qcc.patches import runner

    if bits not in (2, 4, 6):
        raise QccError(f"patch precision: bits must be 2, 4 or 6, got {bits}")
    if not 0 < outlier_quantile <= 1:
        raise QccError(f"patch precision: outlier_quantile must lie in (0, 1], got {outlier_quantile}")
    for op in module.walk():
        op.attributes.pop(PRECISION_ATTR, None)
    plan = _plan(module)
    run = runner(module, plan) if plan is not None else None
    if run is None:
        raise QccError("patch precision needs a quantized module with a tile-patches stage")
    a = run.a
    cands = candidates(a)
    zp = {op: q.qparams_of(op.results[0].type).zero_point[0] for op in cands}
    peaks: dict = {op: [] for op in cands}
    hists: dict = {op: [] for op in cands}  # per tile: histogram of the 8-bit values q over [-128, 127]

    def observe(op, tile, i, j):
        if op in peaks:
            v = tile.astype(np.int64) - zp[op]
            peaks[op].append(np.abs(v).reshape(len(v), -1).max(axis=1))
            hists[op].append(np.stack([np.bincount(s.ravel().astype(np.int64) + 128, minlength=256) for s in tile]))

    run.observer = observe
    try:
        run_samples(module, inputs)
    finally:
        run.observer = None
    g = a.g
    scores = []
    for op in cands:
        pk = np.concatenate(peaks[op])
        h = np.concatenate(hists[op])
        thr = int(np.ceil(np.quantile(pk, outlier_quantile)))
        normal = pk <= thr
        hist8 = h[normal].sum(axis=0)
        d = step(bits, thr)
        vals = np.arange(-128, 128) - zp[op]
        k = np.clip(np.sign(vals) * ((np.abs(vals) + d // 2) // d), -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        low = np.bincount(k + (1 << (bits - 1)), weights=hist8, minlength=1 << bits)
        loss = max(_entropy(hist8) - _entropy(low), 1e-9)
        saved = 0.0
        for u in op.results[0].uses:
            c = u.operation
            if isinstance(c, q.ConvOp) and c in a.tile_macs:
                wb = q.qparams_of(c.operands[1].type).bits
                saved += a.tile_macs[c] * wb * (8 - bits) * float(normal.mean())
        scores.append((saved / loss, op, thr, loss, saved, float(1 - normal.mean())))
    scores.sort(key=lambda s: -s[0])
    chosen, total_loss, total_saved = [], 0.0, 0.0
    for score, op, thr, loss, saved, frac in scores:
        if total_loss + loss > max_entropy_loss:
            continue
        op.attributes[PRECISION_ATTR] = DenseArrayBase.from_list(i64, [bits, thr])
        total_loss += loss
        total_saved += saved
        chosen.append({"op": rf._op_label(op), "threshold": thr, "outlier_fraction": round(frac, 4),
                       "entropy_loss_bits": round(loss, 4), "bitops_saved": int(saved)})
    base = sum(a.tile_macs.get(op, g.macs[op]) * _w_bits(op) * _a_bits(op) for op in g.ops if g.macs.get(op))
    thresholds = {op: thr for _, op, thr, *_ in scores}
    tiles = sum(len(np.concatenate(peaks[op])) for op in cands)
    outl = sum(int((np.concatenate(peaks[op]) > thresholds[op]).sum()) for op in cands)
    return {"bits": bits, "outlier_quantile": outlier_quantile, "max_entropy_loss": max_entropy_loss,
            "narrowed": chosen, "calibration_outlier_fraction": round(outl / tiles, 4) if tiles else 0.0,
            "bitops_8bit_patch": int(base), "bitops_saved": int(total_saved),
            "bitops_reduction": round(base / max(1.0, base - total_saved), 4)}


def _w_bits(op) -> int:
    if isinstance(op, q.ConvOp | q.FullyConnectedOp):
        return q.qparams_of(op.operands[1].type).bits
    return 32


def _a_bits(op) -> int:
    qp = q.qparams_of(op.operands[0].type)
    return qp.bits if qp is not None else 32
