"""qcc.numerics against independent integer formulations.

Every reference here is written from the published algorithms with plain Python
ints (arbitrary precision, C division semantics restated explicitly) or exact
rationals (fractions.Fraction), never by calling the code under test:

* requantize32 = gemmlowp's SaturatingRoundingDoublingHighMul followed by
  RoundingDivideByPOT (TFLite's MultiplyByQuantizedMultiplier), and within one
  unit of the exact product acc * M;
* requantize64 = TFLite's int64 MultiplyByQuantizedMultiplier (16-bit multiplier);
* quantize_multiplier reconstructs M to 2^-31 relative;
* dot_bound / dot_bound_exact: sound for every input, the exact one attained;
* pack/unpack round trips and the documented byte layout;
* choose_qparams / weight_qparams ranges.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from qcc import numerics as nx

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------ pure-Python references


def c_div(a: int, b: int) -> int:
    """C/C++ integer division: the quotient truncated toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul(int32 a, int32 b)."""
    assert INT32_MIN <= a <= INT32_MAX and INT32_MIN <= b <= INT32_MAX
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b  # std::int64_t a_64 * b_64
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return c_div(ab + nudge, 1 << 31)  # (ab_64 + nudge) / (1ll << 31), truncating


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    """gemmlowp RoundingDivideByPOT on an int32 (two's complement & and arithmetic >>)."""
    assert 0 <= exponent <= 31
    mask = (1 << exponent) - 1
    remainder = x & mask  # Python's & on negative ints is two's complement
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def mbqm32(x: int, m: int, shift: int) -> int:
    """TFLite MultiplyByQuantizedMultiplier(int32 x, int32 m, int shift); the caller
    guarantees x * 2^left fits in int32 (C would overflow otherwise)."""
    left = shift if shift > 0 else 0
    right = 0 if shift > 0 else -shift
    xl = x * (1 << left)
    assert INT32_MIN <= xl <= INT32_MAX
    return rounding_divide_by_pot(srdhm(xl, m), right)


def mbqm64(x: int, m: int, shift: int) -> int:
    """TFLite MultiplyByQuantizedMultiplier(int64 x, int32 m, int shift) (the 16x8 kernels)."""
    assert m >= 0 and -31 <= shift < 8 and -(1 << 47) <= x < (1 << 47)
    reduced = ((m + (1 << 15)) >> 16) if m < 0x7FFF0000 else 0x7FFF
    total_shift = 15 - shift
    rnd = 1 << (total_shift - 1)
    result = (x * reduced + rnd) >> total_shift
    assert -(1 << 63) <= x * reduced + rnd < (1 << 63)  # no int64 overflow
    return max(INT32_MIN, min(INT32_MAX, result))


def round_half_away_q(v: Fraction) -> int:
    n = math.floor(abs(v) + Fraction(1, 2))
    return n if v >= 0 else -n


def rational_requant32(acc: int, m0: int, shift: int) -> int:
    """The same result in exact rationals: round-half-up of x*m0/2^31 (what SRDHM's
    nudge-and-truncate computes), then half-away-from-zero division by 2^right."""
    left, right = max(shift, 0), max(-shift, 0)
    high = math.floor(Fraction(acc * (1 << left) * m0, 1 << 31) + Fraction(1, 2))
    return round_half_away_q(Fraction(high, 1 << right))


def my_quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier restated with exact rationals."""
    if real == 0:
        return 0, 0
    frac, shift = math.frexp(real)
    q = Fraction(frac) * (1 << 31)
    m0 = math.floor(q + Fraction(1, 2))  # frac > 0: half away == half up
    if m0 == 1 << 31:
        m0, shift = m0 // 2, shift + 1
    if shift < -31:
        return 0, 0
    return m0, shift


multipliers = st.floats(min_value=1e-6, max_value=100.0, exclude_min=True, exclude_max=True,
                        allow_nan=False, allow_infinity=False)


# ----------------------------------------------------------------- C helpers


def test_c_div_truncates_toward_zero():
    assert [c_div(a, 4) for a in (7, -7, 8, -8, 1, -1)] == [1, -1, 2, -2, 0, 0]


def test_reference_rounding_divide_by_pot_ties_away():
    assert [rounding_divide_by_pot(x, 1) for x in (1, -1, 3, -3, 2, -2)] == [1, -1, 2, -2, 1, -1]
    assert [rounding_divide_by_pot(x, 2) for x in (5, -5, 6, -6, 7, -7)] == [1, -1, 2, -2, 2, -2]


def test_srdhm_saturates_and_rounds():
    assert srdhm(INT32_MIN, INT32_MIN) == INT32_MAX
    got = nx.saturating_rounding_doubling_high_mul(np.array([INT32_MIN, 1 << 30, -(1 << 30)]),
                                                   np.array([INT32_MIN, 1 << 30, 1 << 30]))
    assert got.tolist() == [INT32_MAX, 1 << 29, -(1 << 29)]


# ------------------------------------------------------------ quantize_multiplier


@SETTINGS
@given(real=st.floats(min_value=2.0 ** -31, max_value=2.0 ** 29))
def test_quantize_multiplier_reconstructs(real):
    m0, shift = nx.quantize_multiplier(real)
    assert (m0, shift) == my_quantize_multiplier(real)
    assert (1 << 30) <= m0 < (1 << 31)
    assert -31 <= shift <= 30
    rep = Fraction(m0) * Fraction(2) ** (shift - 31)
    err = abs(rep - Fraction(real))
    assert err <= Fraction(2) ** (shift - 32)  # half a unit of the Q0.31 grid
    assert err <= Fraction(real) * Fraction(1, 1 << 31)  # 2^-31 relative


def test_quantize_multiplier_edges():
    assert nx.quantize_multiplier(0.0) == (0, 0)
    assert nx.quantize_multiplier(0.5) == (1 << 30, 0)
    assert nx.quantize_multiplier(1.0) == (1 << 30, 1)
    assert nx.quantize_multiplier(0.75) == (3 << 29, 0)
    # frac * 2^31 rounds up to 2^31: renormalised to 2^30 with the shift raised
    assert nx.quantize_multiplier(1 - 2.0 ** -40) == (1 << 30, 1)
    assert nx.quantize_multiplier(2.0 ** -40) == (0, 0)  # shift < -31: rounds to zero
    assert nx.quantize_multiplier(2.0 ** -32) == (1 << 30, -31)
    for bad in (-1.0, math.inf, math.nan):
        with pytest.raises(ValueError):
            nx.quantize_multiplier(bad)
    with pytest.raises(ValueError):
        nx.quantize_multiplier(2.0 ** 31)  # shift 32 cannot be a 32-bit left shift
    m0, shift = nx.quantize_multipliers([0.25, 0.0, 3.0])
    assert m0.tolist() == [1 << 30, 0, 3 << 29] and shift.tolist() == [-1, 0, 2]


# ----------------------------------------------------------------- requantize32


@st.composite
def acc_and_multiplier(draw):
    real = draw(multipliers)
    m0, shift = nx.quantize_multiplier(real)
    lim = INT32_MAX >> max(shift, 0)  # acc << left must fit in int32
    accs = draw(st.lists(st.one_of(st.integers(-lim, lim), st.sampled_from([-lim, lim, 0, 1, -1])),
                         min_size=1, max_size=40))
    return real, m0, shift, accs


@SETTINGS
@given(acc_and_multiplier())
def test_requantize32_matches_gemmlowp_and_rationals(case):
    real, m0, shift, accs = case
    got = nx.requantize32(np.array(accs, np.int64), m0, shift)
    assert got.dtype == np.int64
    for acc, g in zip(accs, got.tolist()):
        want = mbqm32(acc, m0, shift)
        assert g == want, (acc, m0, shift)
        assert want == rational_requant32(acc, m0, shift)
        # within one unit of the exact acc * m0 * 2^(shift - 31) ...
        rep = Fraction(acc * m0) * Fraction(2) ** (shift - 31)
        assert abs(g - rep) < 1
        # ... and of acc * M itself while |acc M| 2^-31 (the multiplier's error) is small
        exact = acc * Fraction(real)
        if abs(exact) <= 1 << 29:
            assert abs(g - exact) <= 1, (acc, real, g, float(exact))


@SETTINGS
@given(st.lists(st.tuples(st.integers(INT32_MIN, INT32_MAX), multipliers.filter(lambda m: m < 0.99)),
                min_size=1, max_size=30))
def test_requantize32_per_element_multipliers(rows):
    """Per-channel use: m0 and shift arrays broadcast elementwise; M < 1 (shift <= 0) takes any int32
    (M within 2^-32 of 1 rounds to m0 = 2^30, shift 1, hence the margin)."""
    accs = [a for a, _ in rows]
    pairs = [nx.quantize_multiplier(m) for _, m in rows]
    got = nx.requantize32(np.array(accs), np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))
    assert got.tolist() == [mbqm32(a, m, s) for a, (m, s) in zip(accs, pairs)]


def test_requantize32_ties():
    # M = 0.5 exactly: m0 = 2^30, shift 0 -> SRDHM rounds x/2 half up (toward +inf)
    assert nx.requantize32(np.array([1, 3, -1, -3]), 1 << 30, 0).tolist() == [1, 2, 0, -1]
    # M = 0.25: m0 = 2^30, shift -1 -> x/2 exact for even x, then ties away from zero
    assert nx.requantize32(np.array([2, 6, -2, -6]), 1 << 30, -1).tolist() == [1, 2, -1, -2]
    for x in (1, 3, -1, -3, 2, 6, -2, -6):
        assert nx.requantize32(np.array([x]), 1 << 30, -1)[0] == mbqm32(x, 1 << 30, -1)


def test_requantize32_saturates_the_left_shift():
    m0, shift = nx.quantize_multiplier(4.0)  # left shift 3
    big = np.array([1 << 29, -(1 << 29), (1 << 28) - 1])
    got = nx.requantize32(big, m0, shift)
    want = [rounding_divide_by_pot(srdhm(max(INT32_MIN, min(INT32_MAX, int(x) << 3)), m0), 0) for x in big]
    assert got.tolist() == want
    assert got.tolist()[:2] == [1 << 30, -(1 << 30)]  # saturated to INT32_MAX / INT32_MIN, then * 0.5


# ----------------------------------------------------------------- requantize64


@SETTINGS
@given(st.data())
def test_requantize64_matches_tflite_int64(data):
    real = data.draw(st.floats(min_value=2.0 ** -31, max_value=127.0))
    m0, shift = nx.quantize_multiplier(real)
    lim = (1 << 47) - 1
    accs = data.draw(st.lists(st.one_of(st.integers(-lim - 1, lim), st.sampled_from([-lim - 1, lim, 0, -1])),
                              min_size=1, max_size=30))
    got = nx.requantize64(np.array(accs, np.int64), m0, shift)
    for acc, g in zip(accs, got.tolist()):
        want = mbqm64(acc, m0, shift)
        assert g == want, (acc, m0, shift)
        reduced = ((m0 + (1 << 15)) >> 16) if m0 < 0x7FFF0000 else 0x7FFF
        exact = Fraction(acc * reduced, 1 << (15 - shift))
        if INT32_MIN < exact < INT32_MAX:
            assert g == math.floor(exact + Fraction(1, 2))  # round half up, no double rounding
            # the 16-bit multiplier is within 2^-15 relative of M
            assert abs(g - acc * Fraction(real)) <= 1 + abs(acc * Fraction(real)) * Fraction(1, 1 << 14)


def test_requantize64_reduced_multiplier_and_saturation():
    # m0 >= 0x7FFF0000 reduces to 0x7FFF (not 0x8000, which would overflow int16)
    m0 = 0x7FFFFFFF
    assert nx.requantize64(np.array([1 << 20]), m0, 0).tolist() == [mbqm64(1 << 20, m0, 0)]
    assert mbqm64(1 << 20, m0, 0) == ((1 << 20) * 0x7FFF + (1 << 14)) >> 15
    m0, shift = nx.quantize_multiplier(100.0)
    assert nx.requantize64(np.array([(1 << 47) - 1, -(1 << 47)]), m0, shift).tolist() == [INT32_MAX, INT32_MIN]
    with pytest.raises(ValueError):
        nx.requantize64(np.array([1]), 1 << 30, 8)
    assert nx.requantize(np.array([7]), 1 << 30, 0, 32).tolist() == [4]
    assert nx.requantize(np.array([7]), 1 << 30, 0, 64).tolist() == [4]
    with pytest.raises(ValueError):
        nx.requantize(np.array([7]), 1 << 30, 0, 16)


# ------------------------------------------------------------ accumulator proofs


@st.composite
def dot_problem(draw):
    w_bits = draw(st.sampled_from([2, 4, 8, 16]))
    x_bits = draw(st.sampled_from([4, 8, 16]))
    x_signed = draw(st.booleans())
    x_lo, x_hi = nx.qrange(x_bits, x_signed)
    zp = draw(st.one_of(st.integers(x_lo, x_hi), st.sampled_from([x_lo, x_hi, 0 if x_signed else x_lo])))
    c = draw(st.integers(1, 4))
    k = draw(st.integers(1, 24))
    w_lo, w_hi = nx.qrange(w_bits, True, narrow=True)
    w = np.array(draw(st.lists(st.integers(w_lo, w_hi), min_size=c * k, max_size=c * k)), np.int64).reshape(c, k)
    bias = np.array(draw(st.lists(st.integers(-(1 << 20), 1 << 20), min_size=c, max_size=c)), np.int64)
    n = draw(st.integers(1, 4))
    xs = np.array(draw(st.lists(st.integers(x_lo, x_hi), min_size=n * k, max_size=n * k)), np.int64).reshape(n, k)
    return nx.QParams(x_bits, x_signed, (0.1,), (zp,)), w, bias, xs


def exact_acc(x_row, w_row, zp, b) -> int:
    return sum((int(x) - zp) * int(wk) for x, wk in zip(x_row, w_row)) + int(b)


@SETTINGS
@given(dot_problem())
def test_dot_bounds_are_sound_and_the_exact_one_is_attained(prob):
    qp, w, bias, xs = prob
    zp = qp.zero_point[0]
    loose = nx.dot_bound(np.abs(w).sum(axis=1), nx.input_max_abs(qp), np.abs(bias))
    exact = nx.dot_bound_exact(w, qp.qmin, qp.qmax, zp, bias)
    assert exact <= loose
    for x in xs:  # random inputs never exceed either bound
        for c in range(w.shape[0]):
            assert abs(exact_acc(x, w[c], zp, bias[c])) <= exact
    # the worst case: x at qmax / qmin by the sign of each weight, or the opposite
    best = 0
    for c in range(w.shape[0]):
        up = [qp.qmax if wk > 0 else qp.qmin for wk in w[c]]
        down = [qp.qmin if wk > 0 else qp.qmax for wk in w[c]]
        best = max(best, abs(exact_acc(up, w[c], zp, bias[c])), abs(exact_acc(down, w[c], zp, bias[c])))
    assert best == exact
    # dot_bound itself is attained when each channel's weights share one sign (no bias)
    same = np.abs(w) * np.where(np.arange(w.shape[0]) % 2, -1, 1)[:, None]
    loose0 = nx.dot_bound(np.abs(same).sum(axis=1), nx.input_max_abs(qp))
    assert loose0 == nx.dot_bound_exact(same, qp.qmin, qp.qmax, zp)
    m = nx.input_max_abs(qp)
    attained = 0
    for c in range(w.shape[0]):
        for side in (qp.qmin, qp.qmax):
            if abs(side - zp) == m:
                attained = max(attained, abs(exact_acc([side] * w.shape[1], same[c], zp, 0)))
    assert attained == loose0


def test_dot_bound_examples():
    w = np.array([[3, -2]])
    # signed 8-bit, zp 0: x - zp in [-128, 127]; the loose bound takes 128 for both
    assert nx.dot_bound(np.array([5]), 128) == 640
    assert nx.dot_bound_exact(w, -128, 127, 0) == 3 * 128 + 2 * 127 == 638
    assert nx.dot_bound_exact(w, -128, 127, 0, np.array([5])) == 3 * 127 + 2 * 128 + 5
    assert nx.dot_bound_exact(np.zeros((2, 3), np.int64), -128, 127, 0, np.array([4, -9])) == 9
    assert nx.dot_bound(np.array([]), 128) == 0
    assert nx.input_max_abs(nx.QParams(8, True, (1.0,), (-3,))) == 130
    assert nx.input_max_abs(nx.QParams(8, False, (1.0,), (128,))) == 128
    # per channel: the worst zero point, not the largest |zp|
    assert nx.input_max_abs(nx.QParams(8, False, (1.0, 1.0), (10, 200), 0)) == 245
    assert nx.input_max_abs(nx.QParams(8, True, (1.0, 1.0), (-3, 3), 0)) == 131


def test_accumulator_bits_thresholds():
    assert nx.accumulator_bits(0) == 32
    assert nx.accumulator_bits(INT32_MAX) == 32
    assert nx.accumulator_bits(INT32_MAX + 1) == 64
    assert nx.accumulator_bits((1 << 47) - 1) == 64
    with pytest.raises(ValueError):
        nx.accumulator_bits(1 << 47)
    # 8-bit x 8-bit: 127 * 128 per term, so 2^31 / 16256 terms fit in 32 bits
    k32 = INT32_MAX // (127 * 128)
    assert nx.accumulator_bits(nx.dot_bound(np.array([127 * k32]), 128)) == 32
    assert nx.accumulator_bits(nx.dot_bound(np.array([127 * (k32 + 1)]), 128)) == 64


# ------------------------------------------------------------------ packing


@SETTINGS
@given(st.data())
def test_pack_round_trip(data):
    bits = data.draw(st.sampled_from([2, 4, 8, 16, 32]))
    signed = data.draw(st.booleans())
    lo, hi = nx.qrange(bits, signed)
    vals = data.draw(st.lists(st.integers(lo, hi), max_size=41))
    v = np.array(vals, np.int64)
    p = nx.pack(v, bits)
    assert p.dtype == np.uint8 and p.ndim == 1
    assert p.size == nx.packed_size(len(vals), bits) == math.ceil(len(vals) * bits / 8)
    u = nx.unpack(p, bits, len(vals), signed)
    assert u.dtype == nx.storage_dtype(bits, signed)
    assert u.tolist() == vals
    if signed:
        assert nx.unpack(p, bits, len(vals)).tolist() == vals  # signed is the default


def test_pack_layout():
    # element 0 in the low bits of byte 0; the last byte zero-padded
    assert nx.pack(np.array([1, -2, 3]), 4).tolist() == [0xE1, 0x03]
    assert nx.pack(np.array([-8, 7]), 4).tolist() == [0x78]
    # 2-bit codes 01, 11, 10, 00 | 01 -> 0b00_10_11_01, 0b01
    assert nx.pack(np.array([1, -1, -2, 0, 1]), 2).tolist() == [0x2D, 0x01]
    assert nx.pack(np.array([-1, 5]), 8).tolist() == [0xFF, 0x05]
    assert nx.pack(np.array([-2, 258]), 16).tolist() == [0xFE, 0xFF, 0x02, 0x01]
    assert nx.pack(np.array([-2, 1 << 24]), 32).tolist() == [0xFE, 0xFF, 0xFF, 0xFF, 0, 0, 0, 1]
    assert nx.unpack(np.array([0xE1, 0x03], np.uint8), 4, 3).tolist() == [1, -2, 3]
    assert nx.unpack(np.array([0xE1, 0x03], np.uint8), 4, 3, signed=False).tolist() == [1, 14, 3]
    assert nx.unpack(np.array([0x2D, 0x01], np.uint8), 2, 5).tolist() == [1, -1, -2, 0, 1]
    with pytest.raises(ValueError):
        nx.pack(np.array([1]), 3)
    with pytest.raises(ValueError):
        nx.unpack(np.array([1], np.uint8), 3, 1)


# ------------------------------------------------------------------ parameters


def test_qparams_validation():
    nx.QParams(8, True, (0.1,), (-128,))
    for args in [(3, True, (0.1,), (0,)), (8, True, (0.0,), (0,)), (8, True, (-0.1,), (0,)),
                 (8, True, (math.inf,), (0,)), (8, True, (math.nan,), (0,)), (8, True, (0.1,), (128,)),
                 (8, False, (0.1,), (-1,)), (4, True, (0.1,), (8,)), (8, True, (0.1, 0.2), (0, 0)),
                 (8, True, (0.1, 0.2), (0,), 0), (8, True, (), (), 0)]:
        with pytest.raises(ValueError):
            nx.QParams(*args)
    assert nx.qrange(4) == (-8, 7) and nx.qrange(4, narrow=True) == (-7, 7) and nx.qrange(4, False) == (0, 15)
    assert nx.storage_dtype(4) == np.int8 and nx.storage_dtype(16, False) == np.uint16
    assert nx.storage_dtype(32) == np.int32
    qp = nx.QParams(8, True, (0.1, 0.2, 0.3), (0, 1, 2), 1)
    assert qp.scale_array(3).shape == (1, 3, 1) and qp.zp_array(2).tolist() == [[0, 1, 2]]


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).filter(lambda v: v == 0 or abs(v) > 1e-6)


@SETTINGS
@given(a=finite, b=finite, bits=st.sampled_from([2, 4, 8, 16]), signed=st.booleans(), symmetric=st.booleans())
def test_choose_qparams_covers_and_keeps_zero(a, b, bits, signed, symmetric):
    lo, hi = min(a, b), max(a, b)
    qp = nx.choose_qparams(lo, hi, bits, signed=signed, symmetric=symmetric)
    s, zp = qp.scale[0], qp.zero_point[0]
    assert qp.bits == bits and qp.signed == signed and qp.axis is None
    assert s > 0 and math.isfinite(s) and qp.qmin <= zp <= qp.qmax
    # zero is exactly representable
    assert nx.quantize(np.array([0.0]), qp).tolist() == [zp]
    assert nx.dequantize(np.array([zp]), qp).tolist() == [0.0]
    if lo == hi == 0:
        return
    lo0, hi0 = min(lo, 0.0), max(hi, 0.0)
    tol = 1e-9 * s
    real_min, real_max = (qp.qmin - zp) * s, (qp.qmax - zp) * s
    if symmetric:
        assert (zp == 0) if signed else (zp == (qp.qmax + 1) // 2)
        assert real_min <= lo0 + tol and real_max >= hi0 - tol  # covered entirely
    else:
        assert real_min <= lo0 + s / 2 + tol and real_max >= hi0 - s / 2 - tol  # within half a step
    assert real_min <= lo0 + s and real_max >= hi0 - s  # within one step either way


def test_choose_qparams_examples():
    qp = nx.choose_qparams(-1.0, 3.0, 8)
    assert qp.scale[0] == pytest.approx(4 / 255) and qp.zero_point[0] == round(-128 + 255 / 4)
    assert nx.choose_qparams(0.5, 2.0, 8).zero_point[0] == -128  # range extended to 0
    assert nx.choose_qparams(-2.0, -0.5, 8).zero_point[0] == 127
    assert nx.choose_qparams(0.0, 0.0, 8).scale[0] > 0
    sym = nx.choose_qparams(-1.0, 0.5, 8, symmetric=True)
    assert sym.zero_point[0] == 0 and sym.scale[0] == pytest.approx(1 / 127)
    usym = nx.choose_qparams(-1.0, 1.0, 8, signed=False, symmetric=True)
    assert usym.zero_point[0] == 128 and usym.scale[0] == pytest.approx(1 / 127)


@SETTINGS
@given(st.data())
def test_weight_qparams_symmetric_narrow(data):
    bits = data.draw(st.sampled_from([2, 4, 8, 16]))
    shape = tuple(data.draw(st.lists(st.integers(1, 4), min_size=2, max_size=4)))
    axis = data.draw(st.sampled_from([None, 0, 1]))
    w = np.array(data.draw(st.lists(st.floats(-10, 10, allow_nan=False), min_size=math.prod(shape),
                                    max_size=math.prod(shape))), np.float64).reshape(shape)
    if data.draw(st.booleans()):
        w[0] = 0.0  # an all-zero channel along axis 0
    if data.draw(st.booleans()):
        w[-1] = 5e-324  # a channel so small that max|w| / qmax underflows
    qp = nx.weight_qparams(w, bits, axis)
    qmax = (1 << (bits - 1)) - 1
    assert qp.signed and qp.bits == bits and qp.axis == axis and set(qp.zero_point) == {0}
    red = None if axis is None else tuple(i for i in range(w.ndim) if i != axis)
    m = np.abs(w).max(axis=red).reshape(-1) if axis is not None else np.array([np.abs(w).max()])
    assert len(qp.scale) == m.size
    for s, mc in zip(qp.scale, m):
        assert s == (mc / qmax if mc / qmax > 0 else 1.0)  # zero (or underflowing) channels: scale 1
    q = nx.quantize(w, qp, narrow=True).astype(np.int64)
    assert q.min() >= -qmax and q.max() <= qmax
    sc = qp.scale_array(w.ndim)
    assert np.all(np.abs(q * sc - w) <= sc / 2 * (1 + 1e-9))
    # the largest weight of each channel lands on +-qmax exactly
    big = np.abs(q).max(axis=red).reshape(-1) if axis is not None else np.array([np.abs(q).max()])
    assert np.all((big == qmax) | (m / qmax == 0))


def test_quantize_dequantize():
    qp = nx.QParams(8, True, (0.5,), (3,))
    x = np.array([0.25, -0.25, 0.75, -0.75, 100.0, -100.0, 0.0])
    # x / 0.5 = 0.5, -0.5, 1.5, -1.5: ties away from zero, then + zp, then clamp
    assert nx.quantize(x, qp).tolist() == [4, 2, 5, 1, 127, -128, 3]
    assert nx.quantize(x, qp).dtype == np.int8
    assert nx.quantize(np.array([-100.0]), qp, narrow=True).tolist() == [-127]
    assert nx.round_half_away(np.array([0.5, 1.5, 2.5, -0.5, -2.5, 0.49])).tolist() == [1, 2, 3, -1, -3, 0]
    d = nx.dequantize(np.array([4, 2, -128], np.int8), qp)
    assert d.dtype == np.float32 and d.tolist() == [0.5, -0.5, -65.5]
    pc = nx.QParams(8, True, (0.5, 0.25), (0, 1), 1)
    assert nx.quantize(np.array([[1.0, 1.0]]), pc).tolist() == [[2, 5]]
    assert nx.dequantize(np.array([[2, 5]]), pc).tolist() == [[1.0, 1.0]]
    assert nx.saturate(np.array([-300, 300]), -128, 127, 8).tolist() == [-128, 127]


@SETTINGS
@given(x=st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=20),
       scale=st.floats(1e-3, 10), zp=st.integers(-128, 127))
def test_quantize_round_trip_error(x, scale, zp):
    qp = nx.QParams(8, True, (scale,), (zp,))
    x = np.array(x)
    inside = ((x / scale + zp) >= -128) & ((x / scale + zp) <= 127)
    assume(inside.any())
    err = np.abs(nx.fake_quantize(x, qp).astype(np.float64) - x)[inside]
    assert np.all(err <= scale / 2 * (1 + 1e-6) + 1e-6 * np.abs(x[inside]))
