"""qcc's integer arithmetic, defined once (docs/numerics.md explains it).

Owns every integer formula that quantized IR means: value ranges of a width,
choosing scale/zero point, quantize/dequantize, the fixed-point requantization
multiplier and its TFLite-compatible rounding, the accumulator-width proof, and
sub-byte packing. The integer interpreter, the lowering pass and the C/LLVM
backends all take their arithmetic from here; nothing else restates it.

All integer work is done in numpy int64 with explicit saturation, so the
results are exactly those of the 32-bit (or 64-bit) C code the backends emit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
WIDTHS = (2, 4, 8, 16)


def qrange(bits: int, signed: bool = True, narrow: bool = False) -> tuple[int, int]:
    """Integer range of a `bits`-wide value; `narrow` drops the most negative code
    (symmetric weights use [-(2^(b-1)-1), 2^(b-1)-1] so that -w never overflows)."""
    if signed:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        return (lo + 1 if narrow else lo), hi
    return 0, (1 << bits) - 1


def storage_dtype(bits: int, signed: bool = True) -> np.dtype:
    """The numpy type an unpacked value of this width lives in."""
    for b, s, u in ((8, np.int8, np.uint8), (16, np.int16, np.uint16), (32, np.int32, np.uint32)):
        if bits <= b:
            return np.dtype(s if signed else u)
    return np.dtype(np.int64 if signed else np.uint64)


def round_half_away(x: np.ndarray) -> np.ndarray:
    """C's round()/std::round: ties away from zero (TFLite's TfLiteRound)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


# ----------------------------------------------------------- parameters


@dataclass(frozen=True)
class QParams:
    """Scale(s) and zero point(s) of one quantized tensor. `axis` is None for
    per-tensor parameters, else the channel axis the arrays run along."""

    bits: int
    signed: bool
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None

    def __post_init__(self) -> None:
        if self.bits not in (2, 4, 8, 16, 32):
            raise ValueError(f"bit width {self.bits} is not one of 2, 4, 8, 16, 32")
        if len(self.scale) != len(self.zero_point) or not self.scale:
            raise ValueError("scales and zero points must be non-empty and of equal length")
        if self.axis is None and len(self.scale) != 1:
            raise ValueError("per-tensor parameters have exactly one scale")
        lo, hi = qrange(self.bits, self.signed)
        for s in self.scale:
            if not (math.isfinite(s) and s > 0):
                raise ValueError(f"scale {s} must be positive and finite")
        for z in self.zero_point:
            if not lo <= z <= hi:
                raise ValueError(f"zero point {z} is outside [{lo}, {hi}] of {self.bits}-bit values")

    @property
    def qmin(self) -> int:
        return qrange(self.bits, self.signed)[0]

    @property
    def qmax(self) -> int:
        return qrange(self.bits, self.signed)[1]

    def scale_array(self, ndim: int = 0) -> np.ndarray:
        """Scales shaped to broadcast against a tensor of rank `ndim`."""
        return self._shaped(np.asarray(self.scale, np.float64), ndim)

    def zp_array(self, ndim: int = 0) -> np.ndarray:
        return self._shaped(np.asarray(self.zero_point, np.int64), ndim)

    def _shaped(self, a: np.ndarray, ndim: int) -> np.ndarray:
        if self.axis is None:
            return a.reshape(()) if a.size == 1 else a
        shape = [1] * ndim
        shape[self.axis] = a.size
        return a.reshape(shape)


def choose_qparams(lo: float, hi: float, bits: int, *, signed: bool = True,
                   symmetric: bool = False) -> QParams:
    """Per-tensor parameters covering [lo, hi] (extended to contain 0, so that
    zero — padding, ReLU's floor — is exact). Asymmetric: scale=(hi-lo)/(qmax-qmin),
    zero point rounded half away from zero and clamped; symmetric: zero point 0
    (unsigned: the middle code), scale = max(|lo|, |hi|) / (qmax - zp)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    qmin, qmax = qrange(bits, signed)
    if symmetric:
        zp = 0 if signed else (qmax + 1) // 2
        scale = max(-lo, hi) / (qmax - zp)
    else:
        scale = (hi - lo) / (qmax - qmin)
        zp = None
    if not scale > 0 or not math.isfinite(scale):
        scale = 1e-8 if not math.isfinite(scale) or scale <= 0 else scale
    if zp is None:
        zp = int(np.clip(round_half_away(qmin - lo / scale), qmin, qmax))
    return QParams(bits, signed, (scale,), (zp,))


def weight_qparams(w: np.ndarray, bits: int, axis: int | None = 0) -> QParams:
    """Symmetric, narrow-range parameters for a weight tensor, per channel along
    `axis` (None: per tensor). A channel of zeros gets scale 1 (any scale is exact), and
    so does one so small (subnormal) that max|w| / qmax underflows to 0."""
    qmax = qrange(bits, True, narrow=True)[1]
    w = np.asarray(w, np.float64)
    if axis is None:
        m = np.array([np.abs(w).max(initial=0.0)])
    else:
        red = tuple(i for i in range(w.ndim) if i != axis)
        m = np.abs(w).max(axis=red, initial=0.0).reshape(-1)
    with np.errstate(under="ignore"):
        scale = m / qmax
    scale = np.where(scale > 0, scale, 1.0)
    return QParams(bits, True, tuple(float(s) for s in scale), tuple(0 for _ in scale), axis)


# ------------------------------------------------------ quantize / dequantize


def quantize(x: np.ndarray, qp: QParams, *, narrow: bool = False) -> np.ndarray:
    """q = clamp(round_half_away(x / scale) + zp, qmin, qmax), in storage dtype."""
    x = np.asarray(x, np.float64)
    lo, hi = qrange(qp.bits, qp.signed, narrow)
    q = round_half_away(x / qp.scale_array(x.ndim)) + qp.zp_array(x.ndim)
    return np.clip(q, lo, hi).astype(storage_dtype(qp.bits, qp.signed))


def dequantize(q: np.ndarray, qp: QParams) -> np.ndarray:
    """x = (q - zp) * scale, computed in float64 and returned as float32."""
    q = np.asarray(q)
    return ((q.astype(np.int64) - qp.zp_array(q.ndim)) * qp.scale_array(q.ndim)).astype(np.float32)


def fake_quantize(x: np.ndarray, qp: QParams, *, narrow: bool = False) -> np.ndarray:
    return dequantize(quantize(x, qp, narrow=narrow), qp)


# ------------------------------------------------------- requantization


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real = m0 * 2^(shift - 31) with m0 in
    [2^30, 2^31) (Q0.31), or (0, 0) for zero. Positive shift = left shift."""
    if real < 0 or not math.isfinite(real):
        raise ValueError(f"requantization multiplier {real} must be finite and non-negative")
    if real == 0:
        return 0, 0
    frac, shift = math.frexp(real)  # real = frac * 2^shift, frac in [0.5, 1)
    m0 = int(round_half_away(frac * (1 << 31)))
    if m0 == 1 << 31:
        m0 //= 2
        shift += 1
    if shift < -31:  # too small to matter: the product rounds to zero anyway
        return 0, 0
    if shift > 30:
        raise ValueError(f"requantization multiplier {real} is too large for a 32-bit shift")
    return m0, shift


def quantize_multipliers(reals: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`quantize_multiplier` over an array (per-channel multipliers), vectorized."""
    r = np.asarray(reals, np.float64).reshape(-1)
    if np.any(r < 0) or not np.all(np.isfinite(r)):
        raise ValueError("requantization multipliers must be finite and non-negative")
    frac, shift = np.frexp(r)
    m0 = round_half_away(frac * float(1 << 31)).astype(np.int64)
    full = m0 == (1 << 31)
    m0 = np.where(full, m0 // 2, m0)
    shift = np.where(full, shift + 1, shift).astype(np.int64)
    if np.any((shift > 30) & (r > 0)):
        raise ValueError(f"requantization multiplier {r.max()} is too large for a 32-bit shift")
    tiny = (r == 0) | (shift < -31)
    return np.where(tiny, 0, m0), np.where(tiny, 0, shift)


def add_params(a: QParams, b: QParams, y: QParams) -> dict:
    """TFLite's quantized-add parameters (PrepareGeneralSubOp / QuantizeMultiplierSmallerThanOneExp)."""
    left_shift = 15 if max(a.bits, b.bits, y.bits) == 16 else 20
    twice_max = 2 * max(a.scale[0], b.scale[0])
    m_a, s_a = quantize_multiplier(a.scale[0] / twice_max)
    m_b, s_b = quantize_multiplier(b.scale[0] / twice_max)
    m_y, s_y = quantize_multiplier(twice_max / ((1 << left_shift) * y.scale[0]))
    return dict(left_shift=left_shift, m_a=m_a, s_a=s_a, m_b=m_b, s_b=s_b, m_y=m_y, s_y=s_y)


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """gemmlowp's SaturatingRoundingDoublingHighMul on int32 values held in int64.

    gemmlowp adds a nudge of 2^30 (ab >= 0) or 1 - 2^30 (ab < 0) and divides by
    2^31 truncating toward zero. For ab < 0, trunc(v / 2^31) = floor((v + 2^31 - 1)
    / 2^31), and v + 2^31 - 1 = ab + 2^30: both signs reduce to the arithmetic
    shift (ab + 2^30) >> 31. The one overflow, INT32_MIN * INT32_MIN, saturates."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    res = (a * b + np.int64(1 << 30)) >> np.int64(31)
    if np.any(b == INT32_MIN):
        res = np.where((a == INT32_MIN) & (b == INT32_MIN), np.int64(INT32_MAX), res)
    return res


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """gemmlowp's RoundingDivideByPOT: x / 2^e rounded to nearest, ties away from zero.

    gemmlowp adds one to floor(x / 2^e) when the remainder exceeds 2^(e-1) - 1
    (x >= 0) or 2^(e-1) (x < 0); that is (x + 2^(e-1) - [x < 0]) >> e, and x for e = 0."""
    x = np.asarray(x, np.int64)
    e = np.asarray(exponent, np.int64)
    half = np.where(e > 0, np.int64(1) << np.maximum(e - 1, 0), 0)
    return (x + half - ((x < 0) & (e > 0))) >> e


def requantize32(acc: np.ndarray, m0: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier for int32 accumulators:
    RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc << left, m0), right).
    The left shift saturates to int32 (TFLite leaves that overflow undefined)."""
    acc = np.asarray(acc, np.int64)
    shift = np.asarray(shift, np.int64)
    if np.all(shift <= 0):
        x = acc  # |acc| < 2^31 is proven; no left shift to saturate
    else:
        x = np.clip(acc << np.maximum(shift, 0), INT32_MIN, INT32_MAX)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, m0), np.maximum(-shift, 0))


def requantize64(acc: np.ndarray, m0: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier for int64 accumulators (its 16x8
    kernels): the Q0.31 multiplier reduced to 16 bits with rounding, then
    (acc * m + 2^(14-shift)) >> (15 - shift), saturated to int32. Exact for
    |acc| < 2^47, which `accumulator_bits` proves; shift must be < 8."""
    acc = np.asarray(acc, np.int64)
    m0 = np.asarray(m0, np.int64)
    shift = np.asarray(shift, np.int64)
    if np.any(shift >= 8):
        raise ValueError("64-bit requantization needs a multiplier below 128 (shift < 8)")
    reduced = np.where(m0 < 0x7FFF0000, (m0 + (1 << 15)) >> 16, 0x7FFF)
    total = 15 - shift
    rnd = np.int64(1) << (total - 1)
    return np.clip((acc * reduced + rnd) >> total, INT32_MIN, INT32_MAX)


def requantize(acc: np.ndarray, m0: np.ndarray, shift: np.ndarray, acc_bits: int) -> np.ndarray:
    if acc_bits == 32:
        return requantize32(acc, m0, shift)
    if acc_bits == 64:
        return requantize64(acc, m0, shift)
    raise ValueError(f"accumulator width {acc_bits} is not 32 or 64")


def saturate(x: np.ndarray, lo: int, hi: int, bits: int, signed: bool = True) -> np.ndarray:
    return np.clip(x, lo, hi).astype(storage_dtype(bits, signed))


# --------------------------------------------------- accumulator proofs


def dot_bound(abs_weight_sums: np.ndarray, x_max_abs: int, bias_max_abs: int | np.ndarray = 0) -> int:
    """A sound upper bound of |Σ_k (x_k - zp) w_k + bias| over every possible input:
    max over output channels of Σ_k |w_k| · max|x - zp| + |bias|. It is attained when
    every weight of a channel has one sign (and the bias agrees); with mixed signs the
    input range [qmin - zp, qmax - zp] is lopsided and `dot_bound_exact` is smaller."""
    s = np.asarray(abs_weight_sums, dtype=object) * int(x_max_abs) + np.asarray(bias_max_abs, dtype=object)
    return int(np.max(s)) if np.size(s) else 0


def dot_bound_exact(weights: np.ndarray, x_qmin: int, x_qmax: int, x_zp: int,
                    bias: int | np.ndarray = 0) -> int:
    """max over output channels c (rows of `weights`, [C, K]) and over every input
    x in [x_qmin, x_qmax]^K of |Σ_k (x_k - x_zp) w[c, k] + bias[c]|: the largest
    accumulator any input can produce. Attained by x_k = qmax or qmin chosen by the
    sign of w[c, k] (both sign patterns tried); never more than `dot_bound`."""
    w = np.asarray(weights, np.int64)
    w = w.reshape(w.shape[0], -1) if w.ndim else w.reshape(1, 1)
    if w.shape[0] == 0:
        return 0
    up, down = int(x_qmax) - int(x_zp), int(x_zp) - int(x_qmin)
    pos = [int(v) for v in np.where(w > 0, w, 0).sum(axis=1)]
    neg = [int(v) for v in np.where(w < 0, -w, 0).sum(axis=1)]
    b = [int(v) for v in np.broadcast_to(np.asarray(bias, np.int64).reshape(-1), (w.shape[0],))]
    return max(max(p * up + n * down + bc, p * down + n * up - bc) for p, n, bc in zip(pos, neg, b))


def accumulator_bits(bound: int) -> int:
    """32 when |acc| <= 2^31 - 1 is proven, else 64; past 2^47 the 64-bit
    requantization would no longer be exact, and qcc refuses."""
    if bound <= INT32_MAX:
        return 32
    if bound < (1 << 47):
        return 64
    raise ValueError(f"accumulator bound {bound} exceeds 2^47; use narrower weights or activations")


def input_max_abs(qp: QParams) -> int:
    """max |q - zp| over every code q of the input's width."""
    return max(max(qp.qmax - z, z - qp.qmin) for z in qp.zero_point)


# ---------------------------------------------------------- sub-byte packing


def packed_size(count: int, bits: int) -> int:
    """Bytes that `count` values of `bits` (2, 4, 8, 16, 32) occupy, packed."""
    return (count * bits + 7) // 8


def pack(values: np.ndarray, bits: int) -> np.ndarray:
    """Packs signed `bits`-wide integers into bytes, little-endian: element 0 in
    the lowest bits of byte 0 (the CMSIS-NN int4 order). 8/16/32-bit values are
    stored as their little-endian bytes (unsigned values pack as their bit pattern)."""
    v = np.asarray(values).reshape(-1).astype(np.int64)
    if bits in (8, 16, 32):
        return v.astype(f"<i{bits // 8}").view(np.uint8).copy()
    if bits not in (2, 4):
        raise ValueError(f"cannot pack {bits}-bit values")
    per = 8 // bits
    u = (v & ((1 << bits) - 1)).astype(np.uint8)
    pad = (-u.size) % per
    u = np.concatenate([u, np.zeros(pad, np.uint8)]).reshape(-1, per)
    out = np.zeros(u.shape[0], np.uint8)
    for i in range(per):
        out |= u[:, i] << np.uint8(i * bits)
    return out


def unpack(packed: np.ndarray, bits: int, count: int, signed: bool = True) -> np.ndarray:
    """Inverse of `pack`: `count` values in `storage_dtype(bits, signed)` (int8 for
    2/4/8-bit, int16, int32; unsigned: uint8, uint16, uint32)."""
    p = np.asarray(packed, np.uint8).reshape(-1)
    if bits in (8, 16, 32):
        kind = "i" if signed else "u"
        return p[: count * bits // 8].view(f"<{kind}{bits // 8}").astype(storage_dtype(bits, signed))
    if bits not in (2, 4):
        raise ValueError(f"cannot unpack {bits}-bit values")
    per = 8 // bits
    mask = (1 << bits) - 1
    u = np.stack([(p >> np.uint8(i * bits)) & mask for i in range(per)], axis=1).reshape(-1)[:count]
    if not signed:
        return u.astype(np.uint8)
    s = u.astype(np.int16)
    s = np.where(s >= (1 << (bits - 1)), s - (1 << bits), s)
    return s.astype(np.int8)
