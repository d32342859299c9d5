"""qcc.calibration_ranges: streaming tensor statistics and the choice of quantization ranges."""

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qcc.calibration_ranges import (
    METHODS,
    TensorStats,
    _kl_curve,
    _kl_threshold,
    choose_range,
    fake_quantize,
    quantization_mse,
)

BITS = (2, 4, 8, 16)
MODES = ((False, True), (True, True), (True, False))  # (symmetric, signed)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite_f32 = st.floats(-1e6, 1e6, width=32, allow_nan=False)
any_f32 = st.floats(width=32)  # NaN and +-inf included
batches = st.lists(hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=3, max_side=7),
                              elements=any_f32), min_size=0, max_size=6)


def stats_of(*arrays, **kw) -> TensorStats:
    s = TensorStats(**kw)
    for a in arrays:
        s.update(a)
    return s


# -- streaming statistics ----------------------------------------------------


@FAST
@given(batches)
def test_streaming_count_min_max_equal_numpy(arrays):
    s = stats_of(*arrays, max_samples=16)
    flat = np.concatenate([a.reshape(-1) for a in arrays] + [np.zeros(0, np.float32)])
    fin = flat[np.isfinite(flat)]
    assert s.count == fin.size
    if fin.size:
        assert s.min == float(fin.min()) and s.max == float(fin.max())
    else:
        assert s.min == math.inf and s.max == -math.inf
    smp = s.sample()
    assert smp.dtype == np.float32 and smp.ndim == 1 and smp.size == min(fin.size, 16)
    assert np.isfinite(smp).all() and np.isin(smp, fin).all()


def test_update_accepts_float64_int_and_scalars():
    s = stats_of(np.array([1e300, -2.5]), np.arange(3), 7.0, np.float16(-3))
    assert (s.count, s.min, s.max) == (7, -3.0, 1e300)
    assert np.isfinite(s.sample()).all()  # 1e300 is clipped to float32's range in the sample


def test_sample_keeps_everything_until_full():
    a = np.arange(100, dtype=np.float32)
    s = stats_of(a[:30], a[30:70], max_samples=70)
    np.testing.assert_array_equal(s.sample(), a[:70])
    s.update(a[70:])
    assert s.sample().size == 70 and np.unique(s.sample()).size == 70


def test_reservoir_inclusion_probability_is_k_over_n():
    # Over many seeds every value of a 100-value stream must be kept with probability 5/100.
    k, n, seeds = 5, 100, 3000
    hits = np.zeros(n)
    for seed in range(seeds):
        s = stats_of(*np.split(np.arange(n, dtype=np.float32), [3, 10, 40, 41, 77]),
                     max_samples=k, seed=seed)
        smp = s.sample().astype(int)
        assert np.unique(smp).size == k
        hits[smp] += 1
    expected = seeds * k / n
    sd = math.sqrt(expected * (1 - k / n))
    assert np.abs(hits - expected).max() < 5 * sd, hits
    chi2 = float(((hits - expected) ** 2 / expected).sum())
    assert chi2 < 160, chi2  # 99 degrees of freedom (99.99% quantile ~ 155 + margin)


def test_reservoir_sample_of_a_large_stream_is_uniform():
    rng = np.random.default_rng(7)
    n, k = 3_000_000, 20_000
    idx = np.arange(n, dtype=np.float64)
    cuts = np.sort(rng.choice(n, 25, replace=False))
    s = stats_of(*np.split(idx, cuts), max_samples=k, seed=3)
    u = np.sort(s.sample().astype(np.float64)) / n  # positions in the stream, should be U(0, 1)
    assert np.unique(u).size == k  # no value twice
    assert abs(u.mean() - 0.5) < 4 * math.sqrt(1 / 12 / k)
    ks = np.max(np.maximum(np.arange(1, k + 1) / k - u, u - np.arange(k) / k))
    assert ks < 1.95 / math.sqrt(k), ks  # Kolmogorov-Smirnov, alpha = 0.1%

    g = rng.standard_normal(2_000_000).astype(np.float32)
    s = stats_of(*np.array_split(g, 9), seed=1)
    smp = s.sample()
    assert smp.size == 1 << 16
    assert abs(smp.mean()) < 0.02 and abs(smp.std() - 1) < 0.02
    np.testing.assert_allclose(np.percentile(smp, [1, 10, 50, 90, 99]),
                               [-2.326, -1.2816, 0.0, 1.2816, 2.326], atol=0.05)


def test_sample_is_deterministic_given_seed_and_batches():
    rng = np.random.default_rng(0)
    data = [rng.standard_normal(s).astype(np.float32) for s in (5000, 40000, 70000, 123)]
    a, b = stats_of(*data, max_samples=1000, seed=5), stats_of(*data, max_samples=1000, seed=5)
    np.testing.assert_array_equal(a.sample(), b.sample())
    c = stats_of(*data, max_samples=1000, seed=6)
    assert not np.array_equal(a.sample(), c.sample())


def test_json_round_trip_and_resume():
    rng = np.random.default_rng(1)
    data = [rng.standard_normal(s).astype(np.float32) * 3 for s in (800, 3000, 5000, 700)]
    whole = stats_of(*data, max_samples=1024, seed=9)
    part = stats_of(*data[:2], max_samples=1024, seed=9)
    d = json.loads(json.dumps(part.to_json(), allow_nan=False))
    back = TensorStats.from_json(d)
    assert (back.count, back.min, back.max, back.max_samples, back.seed) == \
        (part.count, part.min, part.max, 1024, 9)
    np.testing.assert_array_equal(back.sample(), part.sample())
    for x in data[2:]:
        back.update(x)
    assert (back.count, back.min, back.max) == (whole.count, whole.min, whole.max)
    np.testing.assert_array_equal(back.sample(), whole.sample())
    for m in METHODS:
        assert choose_range(back, m, 8) == choose_range(whole, m, 8)

    empty = TensorStats.from_json(json.loads(json.dumps(TensorStats().to_json(), allow_nan=False)))
    assert (empty.count, empty.min, empty.max, empty.sample().size) == (0, math.inf, -math.inf, 0)
    with pytest.raises(ValueError):
        TensorStats.from_json({"format": "something else"})


# -- the quantizer -----------------------------------------------------------


def ref_fake_quant(v: float, lo: float, hi: float, bits: int, signed: bool,
                   symmetric: bool) -> float:
    def rnd(z):  # half away from zero
        return math.copysign(math.floor(abs(z) + 0.5), z)

    if symmetric and signed:
        qmax = 2 ** (bits - 1) - 1
        scale = max(-lo, hi) / qmax
        return min(max(rnd(v / scale), -qmax), qmax) * scale
    if symmetric:
        scale = hi / (2 ** bits - 1)
        return min(max(rnd(v / scale), 0), 2 ** bits - 1) * scale
    scale = (hi - lo) / (2 ** bits - 1)
    zp = rnd(-lo / scale)
    return (min(max(rnd(v / scale) + zp, 0), 2 ** bits - 1) - zp) * scale


def test_fake_quantize_matches_scalar_reference_and_rounds_half_away():
    x = np.array([-3.0, -1.5, -0.5, -0.25, 0.0, 0.25, 0.5, 1.5, 2.5, 7.0, 8.0, 100.0])
    for bits in BITS:
        for symmetric, signed in MODES:
            for lo, hi in ((-8.0, 8.0), (-1.0, 10.0), (-7.0, 7.0)):
                got = fake_quantize(x, lo, hi, bits, signed, symmetric=symmetric)
                ref = [ref_fake_quant(v, lo, hi, bits, signed, symmetric) for v in x]
                np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    # Ties: scale 1 (7 levels each side at 4 bits), 0.5 -> 1, -1.5 -> -2, 2.5 -> 3.
    got = fake_quantize(np.array([0.5, -0.5, -1.5, 2.5]), -7, 7, 4, symmetric=True)
    np.testing.assert_array_equal(got, [1, -1, -2, 3])
    assert fake_quantize(np.ones(3, np.float32), -1, 1, 8).dtype == np.float32
    np.testing.assert_array_equal(fake_quantize(np.ones(3), 0.0, 0.0, 8), 0.0)


# -- choose_range ------------------------------------------------------------


def check_range(r, symmetric=False, signed=True):
    lo, hi = r
    assert isinstance(lo, float) and isinstance(hi, float)
    assert math.isfinite(lo) and math.isfinite(hi)
    assert lo <= 0.0 <= hi and hi - lo >= 1e-12, r
    if symmetric and signed:
        assert lo == -hi
    elif symmetric:
        assert lo == 0.0


@FAST
@given(batches, st.sampled_from(METHODS), st.sampled_from(BITS), st.sampled_from(MODES),
       st.floats(50, 100))
def test_range_is_valid_for_any_data(arrays, method, bits, mode, p):
    symmetric, signed = mode
    s = stats_of(*arrays, max_samples=64)
    r = choose_range(s, method, bits, signed, symmetric=symmetric, percentile=p)
    check_range(r, symmetric, signed)
    if s.count:
        lo0, hi0 = choose_range(s, "minmax", bits, signed, symmetric=symmetric)
        assert lo0 <= r[0] and r[1] <= max(hi0, 1e-8)  # never wider than minmax


@pytest.mark.parametrize("data", [[], [0.0], np.zeros(1000), np.full(500, 3.5), np.full(7, -2.0),
                                  [1e-30, -1e-30], [np.nan, np.inf, -np.inf], [42.0]],
                         ids=["empty", "zero", "zeros", "const+", "const-", "tiny", "nonfinite",
                              "single"])
def test_degenerate_data_gives_valid_ranges(data):
    s = stats_of(np.asarray(data, np.float32))
    for method in METHODS:
        for bits in BITS:
            for symmetric, signed in MODES:
                r = choose_range(s, method, bits, signed, symmetric=symmetric)
                check_range(r, symmetric, signed)
                if s.count == 0 or s.min == s.max == 0:
                    assert r == ((-1e-8, 1e-8) if symmetric and signed else (0.0, 1e-8)), r
    if s.count and s.min == s.max and s.max != 0:
        v = s.max  # a constant is represented exactly by every method
        for method in METHODS:
            lo, hi = choose_range(s, method, 8)
            assert (lo, hi) == (min(v, 0.0), max(v, 0.0))


def test_errors():
    s = stats_of(np.ones(4))
    with pytest.raises(ValueError, match="minmax, percentile, mse, entropy"):
        choose_range(s, "kl", 8)
    for bits in (1, 17, 8.5, True):
        with pytest.raises(ValueError, match="bits"):
            choose_range(s, "minmax", bits)
    with pytest.raises(ValueError, match="percentile"):
        choose_range(s, "percentile", 8, percentile=120)


def test_minmax_and_percentile_values():
    x = np.linspace(-2, 6, 10001).astype(np.float32)
    s = stats_of(x[:4000], x[4000:])
    assert choose_range(s, "minmax", 8) == (-2.0, 6.0)
    assert choose_range(s, "minmax", 8, symmetric=True) == (-6.0, 6.0)
    assert choose_range(s, "minmax", 8, False, symmetric=True) == (0.0, 6.0)
    assert choose_range(stats_of(x + 3), "minmax", 8) == (0.0, float(np.float32(9)))
    smp = s.sample()
    lo, hi = choose_range(s, "percentile", 8, percentile=99)
    assert (lo, hi) == tuple(float(v) for v in np.percentile(smp, [1, 99]))
    lo, hi = choose_range(s, "percentile", 8, symmetric=True, percentile=90)
    assert hi == -lo == float(np.percentile(np.abs(smp), 90))
    assert choose_range(s, "percentile", 8, percentile=100) == (-2.0, 6.0)
    # float64 data rounds up in the float32 sample; the range stays within [min, max].
    s = stats_of(np.array([-0.99999999999, 0.5, 0.99999999999]))
    assert s.sample().max() == 1.0 > s.max
    for method in ("percentile", "mse", "entropy"):
        lo, hi = choose_range(s, method, 8, percentile=100)
        assert s.min <= lo and hi <= s.max


def gaussian_with_outliers():
    rng = np.random.default_rng(123)
    stats, bulk = TensorStats(), []
    for k in range(8):
        b = rng.standard_normal(1 << 17).astype(np.float32)
        bulk.append(b.copy())
        if k == 3:
            b[:3] = [400.0, -250.0, 600.0]
        stats.update(b)
    return stats, np.concatenate(bulk)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("symmetric", [False, True])
def test_outliers_clipped_by_percentile_mse_entropy(bits, symmetric):
    s, bulk = gaussian_with_outliers()
    mm = choose_range(s, "minmax", bits, symmetric=symmetric)
    mm_err = quantization_mse(bulk, *mm, bits, symmetric=symmetric)
    for method in ("percentile", "mse", "entropy"):
        r = choose_range(s, method, bits, symmetric=symmetric)
        check_range(r, symmetric)
        assert r[1] - r[0] < 0.05 * (mm[1] - mm[0]), (method, r, mm)
        err = quantization_mse(bulk, *r, bits, symmetric=symmetric)
        assert err < 0.1 * mm_err, (method, err, mm_err)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, st.integers(1, 300), elements=finite_f32),
       st.sampled_from(BITS), st.sampled_from(MODES), st.floats(0.01, 100), st.booleans())
def test_mse_never_worse_than_minmax_on_the_sample(x, bits, mode, scale, heavy_tail):
    symmetric, signed = mode
    rng = np.random.default_rng(x.size)
    extra = rng.standard_normal(2000).astype(np.float32) * np.float32(scale)
    if heavy_tail:
        extra = extra ** 3
    s = stats_of(x, extra, max_samples=1024)
    smp = s.sample()
    r_mse = choose_range(s, "mse", bits, signed, symmetric=symmetric)
    r_mm = choose_range(s, "minmax", bits, signed, symmetric=symmetric)
    e_mse = quantization_mse(smp, *r_mse, bits, signed, symmetric=symmetric)
    e_mm = quantization_mse(smp, *r_mm, bits, signed, symmetric=symmetric)
    assert e_mse <= e_mm, (r_mse, r_mm, e_mse, e_mm)


def kl_reference(v, levels):
    """The KL calibration loop written out (per candidate), same smoothing as the module."""
    nb = 2048
    vmax = float(v.max())
    c = np.bincount(np.minimum((v.astype(np.float64) * (nb / vmax)).astype(int), nb - 1),
                    minlength=nb).astype(float)
    n = c.sum()
    kls = []
    for i in range(levels, nb + 1):
        p = c[:i].copy()
        p[i - 1] += c[i:].sum()
        p /= n
        m = i // levels
        q = np.zeros(i)
        for j in range(levels):
            g = c[j * m: (j + 1) * m if j < levels - 1 else i]
            nz = np.count_nonzero(g)
            if nz:
                q[j * m: j * m + g.size] = np.where(g > 0, g.sum() / nz, 0.0)
        if q.sum():
            q /= q.sum()
        q = (q + 1e-4 / i) / (1 + 1e-4)
        kls.append(float(np.sum(p[p > 0] * np.log(p[p > 0] / q[p > 0]))))
    return np.array(kls), vmax / nb


@pytest.mark.parametrize("levels", [2, 8, 16])
def test_entropy_closed_form_matches_loop(levels):
    rng = np.random.default_rng(levels)
    for v in (np.abs(rng.standard_normal(20000)), rng.exponential(size=5000) ** 2,
              np.concatenate([rng.uniform(0, 1, 3000), [50.0]])):
        kls, width = kl_reference(v, levels)
        i, kl = _kl_curve(v, levels, float(v.max()))
        np.testing.assert_array_equal(i, np.arange(levels, 2049))
        np.testing.assert_allclose(kl, kls, rtol=1e-9, atol=1e-12)
        t = _kl_threshold(v, levels, float(v.max()))
        i = int(round(t / width))
        assert math.isclose(t, i * width, rel_tol=1e-9)
        assert kls[i - levels] <= kls.min() + 1e-9 * max(1.0, abs(kls.min())), (i, kls.argmin())


def test_entropy_on_relu_like_data_and_per_side():
    rng = np.random.default_rng(2)
    x = np.maximum(rng.standard_normal(200_000), 0).astype(np.float32)  # half exact zeros
    s = stats_of(x)
    lo, hi = choose_range(s, "entropy", 8, False, symmetric=True)
    assert lo == 0.0 and 2.5 < hi <= s.max
    lo, hi = choose_range(s, "entropy", 8)
    assert lo == 0.0 and 2.5 < hi <= s.max
    y = np.concatenate([-rng.exponential(0.1, 50_000), rng.exponential(2.0, 50_000)])
    lo, hi = choose_range(stats_of(y), "entropy", 8)
    assert -1.5 < lo < -0.2 and 5 < hi < 30, (lo, hi)  # each side calibrated on its own
    assert choose_range(stats_of(y), "entropy", 16) == choose_range(stats_of(y), "minmax", 16)
