"""`assign-bit-widths`: per-op weight and activation widths in O(n).

    qcc-opt m.mlir -p 'assign-bit-widths{bits="4,8" sqnr_min=30.0 size_budget_kb=40.0}'

Reads `qcc.sensitivity` (from measure-sensitivity) and writes `qcc.w_bits`,
`qcc.a_bits` and `qcc.width_reason` on every measured op. Strategies:

* `greedy` (default), three linear steps:
  1. floor: every op starts at the widest candidate; with `sqnr_min`, each op
     takes the narrowest weight and activation width whose local SQNR reaches it
     (the widest width failing is an error naming the op).
  2. `size_budget_kb`: weight widths are lowered step by step (8->4->2) where
     the relative output error added per byte saved is smallest. The steps of
     one op are made monotone (a later step never looks cheaper than an earlier
     one), so choosing "every step cheaper than a threshold t" is always a
     valid assignment, and t is found by weighted quickselect: median-of-the-rest
     pivots discard a constant fraction each round, O(n) expected.
  3. `bitops_budget`: the same selection over activation (and remaining
     weight) steps, with BitOPs = MACs x w_bits x a_bits saved as the gain.
* `uhlich`: Uhlich et al. (ICLR 2020) parametrize a quantizer by step size d
  and range r, with b = ceil(log2(r/d + 1)) + 1 bits for a signed tensor. Here
  d is the step whose uniform noise d^2/12 meets `sqnr_min` (default 30 dB)
  for the tensor's power, r its calibrated (activations) or absolute maximum
  (weights); b is rounded up to the next candidate width.

Each op is visited a constant number of times (|bits| steps at most), so the
pass is linear in the number of ops; tools/bench_quant.py measures it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, StringAttr, i64
from xdsl.ir import Operation
from xdsl.passes import ModulePass

from qcc.dialects import onnx as donnx
from qcc.errors import QccError
from qcc.passes.calibrate import STATS, activation_widths, parse_bits
from qcc.passes.lower_to_quant import A_BITS, W_BITS
from qcc.passes.measure_sensitivity import read_metrics, weight_matrix

REASON = "qcc.width_reason"


def macs(op: donnx.OnnxOp) -> int:
    """Multiply-accumulates of one inference (batch as declared)."""
    t = op.onnx_type
    y = op.results[0].type.get_shape()
    if t == "Conv":
        w = op.inputs[1].type.get_shape()
        return int(np.prod(y)) * int(np.prod(w[1:]))
    if t in ("Gemm", "MatMul"):
        w = weight_matrix(op)
        if w is not None:
            return int(np.prod(y)) * int(w.shape[1])
        a = op.inputs[0].type.get_shape()
        return int(np.prod(y)) * int(a[-1])
    return 0


@dataclass
class _OpChoice:
    op: Operation
    m: dict
    params: int
    macs: int
    w_opts: list[int]  # allowed weight widths, widest first
    a_opts: list[int]
    w: int = 0
    a: int = 0
    reason: str = ""


def weighted_select(cost: np.ndarray, gain: np.ndarray, need: float, work: list[int] | None = None) -> np.ndarray:
    """Smallest-cost prefix (by cost) whose gains sum to >= need: a boolean mask.
    O(n): each round splits the candidates at their median cost (linear-time
    selection) and continues in one half only, so the rounds touch n + n/2 +
    n/4 + ... < 2n elements (`work`, if given, receives the count per round)."""
    chosen = np.zeros(cost.size, bool)
    cand = np.arange(cost.size)
    while need > 0 and cand.size:
        if work is not None:
            work.append(int(cand.size))
        c = cost[cand]
        pivot = np.median(c)
        lt, eq, gt = cand[c < pivot], cand[c == pivot], cand[c > pivot]
        s_lt = float(gain[lt].sum())
        if s_lt >= need:
            cand = lt
            continue
        chosen[lt] = True
        need -= s_lt
        s_eq = float(gain[eq].sum())
        if s_eq >= need:  # ties at the threshold: take them in order until enough
            for i in eq:
                if need <= 0:
                    break
                chosen[i] = True
                need -= gain[i]
            break
        chosen[eq] = True
        need -= s_eq
        cand = gt
    return chosen


def _steps(choices: list[_OpChoice], kind: str) -> tuple[list[tuple[_OpChoice, int]], np.ndarray, np.ndarray]:
    """Downgrade steps (op, new width) with cost (relative output error added) and gain."""
    items, cost, gain = [], [], []
    for ch in choices:
        opts = ch.w_opts if kind == "w" else ch.a_opts
        cur = ch.w if kind == "w" else ch.a
        prev_ratio = 0.0
        mse = ch.m["w_mse"] if kind == "w" else ch.m["a_mse"]
        sig = max(ch.m["signal"], 1e-30)
        for hi, lo in zip(opts, opts[1:]):
            if lo >= cur:
                continue
            if kind == "w":
                g = ch.params * (hi - lo) / 8
            else:
                g = ch.macs * ch.w * (hi - lo)
            if g <= 0:
                continue
            c = max(mse.get(lo, 0.0) - mse.get(hi, 0.0), 0.0) / sig
            prev_ratio = max(prev_ratio, c / g)  # monotone per op
            items.append((ch, lo))
            cost.append(prev_ratio)
            gain.append(g)
    return items, np.asarray(cost, np.float64), np.asarray(gain, np.float64)


def _apply_steps(items, mask, kind: str, why: str) -> None:
    for (ch, lo), take in zip(items, mask):
        if not take:
            continue
        if kind == "w" and lo < ch.w:
            ch.w = lo
            ch.reason += f"; weights {why}"
        elif kind == "a" and lo < ch.a:
            ch.a = lo
            ch.reason += f"; activations {why}"


def weight_bytes(choices: list[_OpChoice]) -> float:
    return sum(ch.params * ch.w / 8 for ch in choices)


def bitops(choices: list[_OpChoice]) -> float:
    return sum(ch.macs * ch.w * ch.a for ch in choices)


def assign(module: ModuleOp, bits: tuple[int, ...], *, sqnr_min: float = 0.0, size_budget_kb: float = 0.0,
           bitops_budget: float = 0.0, strategy: str = "greedy") -> list[_OpChoice]:
    w_widths = sorted(bits, reverse=True)
    a_widths = sorted(activation_widths(bits), reverse=True)
    choices: list[_OpChoice] = []
    for op in module.walk():
        m = read_metrics(op)
        if m is None or not isinstance(op, donnx.OnnxOp):
            continue
        w = weight_matrix(op)
        ch = _OpChoice(op, m, 0 if w is None else int(w.size), macs(op), list(w_widths), list(a_widths))
        ch.w, ch.a = w_widths[0], a_widths[0]
        ch.reason = "widest candidate"
        choices.append(ch)
    if strategy == "uhlich":
        _uhlich(choices, sqnr_min or 30.0)
    elif strategy != "greedy":
        raise QccError(f"bit-width strategy '{strategy}' is not one of greedy, uhlich")
    elif sqnr_min:
        for ch in choices:
            name = ch.op.node_name or ch.op.onnx_type
            if ch.params:
                ok = [b for b in w_widths if ch.m["w_sqnr"].get(b, -1e9) >= sqnr_min]
                if not ok:
                    best = max(ch.m["w_sqnr"].values())
                    raise QccError(f"--sqnr-min {sqnr_min:g} dB is impossible: op '{name}' ({ch.op.onnx_type}) "
                                   f"reaches at most {best:.1f} dB weight SQNR at {w_widths[0]} bits")
                ch.w = min(ok)
                ch.w_opts = [b for b in w_widths if b >= ch.w]
            ok = [b for b in a_widths if ch.m["a_sqnr"].get(b, -1e9) >= sqnr_min]
            if not ok:
                best = max(ch.m["a_sqnr"].values(), default=float("nan"))
                raise QccError(f"--sqnr-min {sqnr_min:g} dB is impossible: op '{name}' ({ch.op.onnx_type}) "
                               f"reaches at most {best:.1f} dB activation SQNR at {a_widths[0]} bits")
            ch.a = min(ok)
            ch.a_opts = [b for b in a_widths if b >= ch.a]
            ch.reason = f"narrowest widths with SQNR >= {sqnr_min:g} dB"
    if size_budget_kb:
        budget = size_budget_kb * 1024
        over = weight_bytes(choices) - budget
        if over > 0:
            items, cost, gain = _steps(choices, "w")
            if gain.sum() < over:
                floor = sum(ch.params * ch.w_opts[-1] / 8 for ch in choices)
                big = max((c for c in choices if c.params), key=lambda c: c.params * c.w_opts[-1], default=None)
                who = f"; the largest is '{big.op.node_name}' with {big.params * big.w_opts[-1] / 8 / 1024:.1f} KB" \
                    if big else ""
                raise QccError(f"--size-budget {size_budget_kb:g} KB is impossible: the narrowest allowed widths "
                               f"still need {floor / 1024:.1f} KB of weights{who}")
            _apply_steps(items, weighted_select(cost, gain, over), "w", "narrowed for --size-budget")
    if bitops_budget:
        over = bitops(choices) - bitops_budget
        if over > 0:
            ia, ca, ga = _steps(choices, "a")
            _apply_steps(ia, weighted_select(ca, ga, over), "a", "narrowed for --bitops-budget")
            over = bitops(choices) - bitops_budget
            if over > 0:
                iw, cw, gw = _steps(choices, "w")
                gw = np.asarray([ch.macs * ch.a * (ch.w - lo) for ch, lo in iw], np.float64)
                _apply_steps(iw, weighted_select(cw, gw, over), "w", "narrowed for --bitops-budget")
            if bitops(choices) > bitops_budget:
                big = max(choices, key=lambda c: c.macs * c.w * c.a)
                raise QccError(f"--bitops-budget {bitops_budget:g} is impossible: the narrowest allowed widths "
                               f"still need {bitops(choices):.3g} BitOPs; the largest op is "
                               f"'{big.op.node_name}' with {big.macs * big.w * big.a:.3g}")
    for ch in choices:
        if ch.params:
            ch.op.attributes[W_BITS] = IntegerAttr(ch.w, i64)
        ch.op.attributes[A_BITS] = IntegerAttr(ch.a, i64)
        ch.op.attributes[REASON] = StringAttr(ch.reason)
    return choices


def uhlich_bits(r: float, power: float, sqnr_db: float) -> int:
    """b = ceil(log2(r/d + 1)) + 1 with d the step whose noise d^2/12 is power / 10^(sqnr/10)."""
    if r <= 0 or power <= 0:
        return 2
    d = math.sqrt(12 * power / 10 ** (sqnr_db / 10))
    return math.ceil(math.log2(r / d + 1)) + 1


def _snap(b: int, widths: list[int]) -> int:
    up = [w for w in sorted(widths) if w >= b]
    return up[0] if up else max(widths)


def _uhlich(choices: list[_OpChoice], sqnr: float) -> None:
    for ch in choices:
        w = weight_matrix(ch.op)
        if w is not None:
            r = float(np.abs(w).max())
            b = uhlich_bits(r, float(np.mean(np.square(w, dtype=np.float64))), sqnr)
            ch.w = _snap(b, ch.w_opts)
        st = ch.op.attributes.get(STATS)
        if st is not None:
            lo, hi, ms = (float(v) for v in st.iter_values())
            b = uhlich_bits(max(abs(lo), abs(hi)), ms, sqnr)
            ch.a = _snap(b, ch.a_opts)
        ch.reason = f"Uhlich et al. rule b = ceil(log2(r/d + 1)) + 1 at {sqnr:g} dB"


@dataclass(frozen=True)
class AssignBitWidthsPass(ModulePass):
    name = "assign-bit-widths"

    bits: str = "4,8"
    sqnr_min: float = 0.0
    size_budget_kb: float = 0.0
    bitops_budget: float = 0.0
    strategy: str = "greedy"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if not any(read_metrics(o) for o in op.walk()):
            raise QccError("assign-bit-widths needs sensitivity metrics: run 'measure-sensitivity' first")
        assign(op, parse_bits(self.bits), sqnr_min=self.sqnr_min, size_budget_kb=self.size_budget_kb,
               bitops_budget=self.bitops_budget, strategy=self.strategy)
