"""Calibration statistics of float tensors and the choice of a quantization range.

`TensorStats` streams over the calibration batches of one tensor and keeps the
exact running min/max of its finite values (NaN and +-inf are ignored) plus a
uniform reservoir sample (Algorithm R, at most `max_samples` values, float32,
deterministic for a given seed and sequence of `update` calls).  It serializes
to a JSON-safe dict (`to_json`/`from_json`), random-generator state included,
so that a calibration can be stored and resumed exactly.

`choose_range(stats, method, bits, signed, symmetric=..., percentile=...)`
returns floats (lo, hi) with lo <= 0 <= hi and hi > lo.  The quantizer they
are meant for (also `fake_quantize`) rounds half away from zero and clamps:

* asymmetric: 2^b levels, scale = (hi-lo)/(2^b-1), zero point round(-lo/scale);
  `signed` only shifts the stored integers, so it does not change the range.
* symmetric (zero point 0), signed: levels -(2^(b-1)-1)..2^(b-1)-1,
  scale = t/(2^(b-1)-1); the range returned is (-t, t).
* symmetric, unsigned: levels 0..2^b-1, scale = t/(2^b-1); the range is (0, t)
  and negative values clamp to 0.
Below, "extents" are (min, max) for asymmetric, max|x| for symmetric signed,
max(max, 0) for symmetric unsigned; "the sample" is the reservoir sample.

Methods:

* ``minmax``: the extents, (min, max) extended to include 0.
* ``percentile``: lo/hi = the (100-p)th and p-th percentiles of the sample
  (symmetric: t = p-th percentile of |x|, or of max(x, 0) when unsigned),
  clipped into [min, max], extended to include 0.  Requires 50 <= p <= 100.
* ``mse``: minimizes the mean squared error of `fake_quantize` on the sample
  over candidate ranges r * extents (both ends scaled by the same ratio r):
  32 log-spaced ratios in [1e-4, 1], then 32 linear ratios between the
  neighbours of the best one.  Asymmetric ranges with both signs are then
  refined one end at a time (the other fixed), 24 + 24 ratios of that end's
  extent each.  minmax is the starting point and only strictly smaller errors
  replace it, so the result is never worse than minmax on the sample.
* ``entropy``: TensorRT-style KL calibration on a 2048-bin histogram of the
  sample over [0, max].  For each candidate i = L..2048 kept bins, P = bins[:i]
  with the clipped mass folded into bin i-1, Q = bins[:i] merged into L groups
  (the last takes the remainder) and spread evenly over each group's non-empty
  bins; the smallest KL(P || Q') wins, threshold i * bin width.  Q is smoothed
  as Q' = (Q + 1e-4/i) / (1 + 1e-4) (the same total smoothing mass for every
  i, so no bias towards either end); KL is computed for all candidates at
  once from prefix sums.  Symmetric signed: histogram of |x|, L = 2^(b-1)
  (128 at 8 bits); symmetric unsigned: of the x > 0, L = 2^b.  Asymmetric:
  the positive and negative sides are calibrated separately (histograms of
  x > 0 and of -x for x < 0), each with L = 2^(b-1), or L = 2^b when the
  other side is empty (min >= 0 or max <= 0).  Exact zeros (and negatives,
  for unsigned symmetric) are left out of the histograms: they map to 0 for
  every threshold, and as a spike in bin 0 (ReLU outputs) they would dominate
  the KL.  When L >= 2048 (more than 11 bits) the histogram cannot resolve
  the quantization and the side's exact extent (minmax) is returned.

Degenerate data: if the chosen hi - lo < 1e-12 (empty stats, all zeros, or a
tiny range) the result is (min(lo, 0), max(hi, 0) + 1e-8), or (-1e-8, 1e-8)
for symmetric signed.  No method raises on data or returns NaN/inf; an unknown
method, bits outside 2..16 (meant for 2, 4, 8, 16) or a percentile outside
[50, 100] raise ValueError.
"""

from __future__ import annotations

import base64
import math

import numpy as np

METHODS = ("minmax", "percentile", "mse", "entropy")

_DEGENERATE = 1e-12
_TINY_RANGE = 1e-8
_HIST_BINS = 2048
_KL_SMOOTHING = 1e-4
_F32_MAX = float(np.finfo(np.float32).max)
_JSON_FORMAT = "qcc.tensor_stats/1"


class TensorStats:
    """Streaming statistics of one float tensor across calibration batches."""

    def __init__(self, max_samples: int = 1 << 16, seed: int = 0):
        if int(max_samples) < 1:
            raise ValueError(f"max_samples must be >= 1, got {max_samples}")
        self.max_samples = int(max_samples)
        self.seed = int(seed)
        self.count = 0  # finite values seen
        self.min = math.inf
        self.max = -math.inf
        self._rng = np.random.default_rng(self.seed)
        self._res = np.empty(0, np.float32)  # allocated on first use

    def __repr__(self) -> str:
        return (f"TensorStats(count={self.count}, min={self.min}, max={self.max}, "
                f"samples={min(self.count, self.max_samples)})")

    # -- streaming ---------------------------------------------------------

    def update(self, x: np.ndarray) -> None:
        """Adds every finite value of `x` (any shape); NaN and +-inf are ignored."""
        a = np.asarray(x)
        if a.dtype.kind != "f":
            a = a.astype(np.float64)
        a = a.reshape(-1)
        if a.size == 0:
            return
        mn, mx = a.min(), a.max()  # NaN propagates, so finite min/max => all finite
        if not (np.isfinite(mn) and np.isfinite(mx)):
            a = a[np.isfinite(a)]
            if a.size == 0:
                return
            mn, mx = a.min(), a.max()
        self.min = min(self.min, float(mn))
        self.max = max(self.max, float(mx))
        self._reservoir_add(a)
        self.count += int(a.size)

    def _reservoir_add(self, a: np.ndarray) -> None:
        k, seen, n = self.max_samples, self.count, a.size
        if self._res.size < k:
            res = np.empty(k, np.float32)
            res[: self._res.size] = self._res
            self._res = res
        fill = min(max(k - seen, 0), n)
        if fill:
            self._res[seen: seen + fill] = _to_f32(a[:fill])
        if fill == n:
            return
        # Algorithm R for the rest: the value with global index t (0-based)
        # replaces a uniformly chosen slot with probability k / (t + 1).  The
        # chosen indices are drawn without touching every value: within a
        # segment [s, e) with e <= 2 (s + 1) candidates are a Bernoulli(q)
        # process (geometric gaps) with q = k / (s + 1) >= p(t) > q / 2,
        # thinned with probability p(t) / q.
        rng = self._rng
        t0, end = seen + fill, seen + n
        picks = []
        s = t0
        while s < end:
            e = min(end, 2 * (s + 1))
            q = k / (s + 1)
            length = e - s
            offs, last = [], -1
            while True:
                gaps = rng.geometric(q, size=int(length * q * 1.1) + 32)
                pos = last + np.cumsum(gaps)
                if pos[-1] >= length:
                    offs.append(pos[pos < length])
                    break
                offs.append(pos)
                last = int(pos[-1])
            cand = np.concatenate(offs) + s  # global indices, increasing
            keep = rng.random(cand.size) * (cand + 1) < (s + 1)
            picks.append(cand[keep])
            s = e
        idx = np.concatenate(picks)
        slots = rng.integers(0, k, size=idx.size)
        # The later of two writes to a slot wins, as in the sequential algorithm.
        last = np.full(k, -1, np.int64)
        np.maximum.at(last, slots, np.arange(idx.size))
        hit = np.flatnonzero(last >= 0)
        self._res[hit] = _to_f32(a[idx[last[hit]] - seen])

    def sample(self) -> np.ndarray:
        """A uniform random subsample of all finite values seen (a copy, float32, 1-D)."""
        return self._res[: min(self.count, self.max_samples)].copy()

    # -- serialization -----------------------------------------------------

    def to_json(self) -> dict:
        """A JSON-safe dict (no inf, no big ints) from which `from_json` resumes exactly."""
        st = self._rng.bit_generator.state
        if st["bit_generator"] != "PCG64":  # pragma: no cover - default_rng is PCG64
            raise ValueError(f"cannot serialize bit generator {st['bit_generator']}")
        smp = self.sample().astype("<f4")
        return {
            "format": _JSON_FORMAT,
            "max_samples": self.max_samples,
            "seed": self.seed,
            "count": self.count,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
            "sample_f32le_b64": base64.b64encode(smp.tobytes()).decode("ascii"),
            "rng": {"state": hex(st["state"]["state"]), "inc": hex(st["state"]["inc"]),
                    "has_uint32": int(st["has_uint32"]), "uinteger": int(st["uinteger"])},
        }

    @classmethod
    def from_json(cls, d: dict) -> "TensorStats":
        if d.get("format") != _JSON_FORMAT:
            raise ValueError(f"not a {_JSON_FORMAT} dict (format={d.get('format')!r})")
        self = cls(d["max_samples"], d["seed"])
        self.count = int(d["count"])
        if self.count:
            self.min, self.max = float(d["min"]), float(d["max"])
        smp = np.frombuffer(base64.b64decode(d["sample_f32le_b64"]), "<f4").astype(np.float32)
        if smp.size != min(self.count, self.max_samples):
            raise ValueError(f"sample has {smp.size} values, expected "
                             f"{min(self.count, self.max_samples)}")
        self._res = np.empty(self.max_samples, np.float32)
        self._res[: smp.size] = smp
        r = d["rng"]
        self._rng.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": int(r["state"], 16), "inc": int(r["inc"], 16)},
            "has_uint32": int(r["has_uint32"]), "uinteger": int(r["uinteger"])}
        return self


def _to_f32(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.float32:
        return a
    if a.dtype.itemsize > 4:  # keep huge float64 values finite in the sample
        a = np.clip(a, -_F32_MAX, _F32_MAX)
    return a.astype(np.float32)


# -- the quantizer ---------------------------------------------------------


def _grid(lo: float, hi: float, bits: int, signed: bool, symmetric: bool):
    """(scale, zero_point, qmin, qmax) of the quantizer for range [lo, hi]."""
    if symmetric and signed:
        qmax = (1 << (bits - 1)) - 1
        return max(-lo, hi, 0.0) / qmax, 0.0, -qmax, qmax
    qmax = (1 << bits) - 1
    if symmetric:
        return max(hi, 0.0) / qmax, 0.0, 0, qmax
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / qmax
    zp = min(max(_round_half_away_scalar(-lo / scale), 0.0), qmax) if scale > 0 else 0.0
    return scale, zp, 0, qmax


def _round_half_away_scalar(v: float) -> float:
    r = math.floor(abs(v))
    if abs(v) - r >= 0.5:
        r += 1
    return math.copysign(r, v)


def fake_quantize(x: np.ndarray, lo: float, hi: float, bits: int, signed: bool = True, *,
                  symmetric: bool = False) -> np.ndarray:
    """Quantizes `x` to the b-bit grid of [lo, hi] and back (see the module docstring).

    Rounds half away from zero and clamps; computed in x's float type (float32
    stays float32).  A zero-width range maps everything to 0."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    scale, zp, qmin, qmax = _grid(float(lo), float(hi), bits, signed, symmetric)
    if not (scale > 0 and math.isfinite(scale)):
        return np.zeros_like(x)
    with np.errstate(over="ignore", invalid="ignore"):
        v = x / x.dtype.type(scale)
        a = np.abs(v)
        r = np.floor(a)
        r += (a - r) >= 0.5  # exact half-away-from-zero rounding
        np.copysign(r, v, out=r)
        if zp:
            r += zp
        np.clip(r, qmin, qmax, out=r)
        if zp:
            r -= zp
        r *= x.dtype.type(scale)
    return r


def quantization_mse(x: np.ndarray, lo: float, hi: float, bits: int, signed: bool = True, *,
                     symmetric: bool = False) -> float:
    """Mean squared error of `fake_quantize` on x (accumulated in float64); 0.0 if x is empty."""
    x = np.asarray(x).reshape(-1)
    if x.size == 0:
        return 0.0
    e = (x - fake_quantize(x, lo, hi, bits, signed, symmetric=symmetric)).astype(np.float64)
    return float(np.einsum("i,i->", e, e) / e.size)  # not np.dot: BLAS threads cost ms here


# -- range choice ----------------------------------------------------------


def choose_range(stats: TensorStats, method: str, bits: int, signed: bool = True, *,
                 symmetric: bool = False, percentile: float = 99.99) -> tuple[float, float]:
    """Returns (lo, hi) with lo <= 0 <= hi (zero always representable) and hi > lo."""
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; valid methods: "
                         + ", ".join(METHODS))
    if isinstance(bits, bool) or int(bits) != bits or not 2 <= bits <= 16:
        raise ValueError(f"bits must be an integer in 2..16 (normally 2, 4, 8 or 16), got {bits!r}")
    bits = int(bits)
    if not 50.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be in [50, 100], got {percentile!r}")
    if stats.count == 0:
        return _finish(0.0, 0.0, signed, symmetric)
    mn, mx = stats.min, stats.max
    lo0, hi0 = _extents(mn, mx, signed, symmetric)
    if method == "minmax" or hi0 - lo0 < _DEGENERATE:
        return _finish(lo0, hi0, signed, symmetric)
    smp = stats.sample()
    if method == "percentile":
        if symmetric:
            v = np.abs(smp) if signed else np.maximum(smp, 0)
            t = float(np.percentile(v, percentile))
            lo, hi = -t, t
        else:
            lo, hi = (float(z) for z in np.percentile(smp, [100.0 - percentile, percentile]))
    elif method == "mse":
        lo, hi = _mse_range(smp, lo0, hi0, bits, signed, symmetric)
    else:
        lo, hi = _entropy_range(smp, mn, mx, bits, signed, symmetric)
    lo, hi = max(lo, lo0), min(hi, hi0)  # clip into [min, max] (the extents)
    return _finish(lo, hi, signed, symmetric)


def _extents(mn: float, mx: float, signed: bool, symmetric: bool) -> tuple[float, float]:
    if symmetric and signed:
        t = max(abs(mn), abs(mx))
        return -t, t
    if symmetric:
        return 0.0, max(mx, 0.0)
    return min(mn, 0.0), max(mx, 0.0)


def _finish(lo: float, hi: float, signed: bool, symmetric: bool) -> tuple[float, float]:
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if symmetric and signed:
        t = max(-lo, hi)
        lo, hi = -t, t
    elif symmetric:
        lo = 0.0
    if not (math.isfinite(lo) and math.isfinite(hi)):  # cannot happen for finite stats
        lo, hi = max(lo, -_F32_MAX), min(hi, _F32_MAX)
    if hi - lo < _DEGENERATE:
        if symmetric and signed:
            return -_TINY_RANGE, _TINY_RANGE
        return lo, hi + _TINY_RANGE
    return lo, hi


def _search(err, n_coarse: int, n_fine: int, best_r: float, best_e: float):
    """Minimizes err(r) over r in (0, 1]: n_coarse log-spaced ratios in [1e-4, 1], then
    n_fine linear ones between the neighbours of the best; starts from (best_r, best_e)
    and only a strictly smaller error replaces it."""
    coarse = np.geomspace(1e-4, 1.0, n_coarse)
    coarse[-1] = 1.0
    errs = [err(r) for r in coarse]
    b = int(np.argmin(errs))
    if errs[b] < best_e:
        best_r, best_e = float(coarse[b]), errs[b]
    for r in np.linspace(coarse[max(b - 1, 0)], coarse[min(b + 1, n_coarse - 1)], n_fine + 2)[1:-1]:
        e = err(r)
        if e < best_e:
            best_r, best_e = float(r), e
    return best_r, best_e


def _mse_range(smp, lo0, hi0, bits, signed, symmetric):
    def mse(lo, hi):
        return quantization_mse(smp, lo, hi, bits, signed, symmetric=symmetric)

    # Joint ratio of both ends; minmax (r = 1) is the starting point.
    r, e = _search(lambda r: mse(r * lo0, r * hi0), 32, 32, 1.0, mse(lo0, hi0))
    lo, hi = (lo0, hi0) if r == 1.0 else (r * lo0, r * hi0)
    if not symmetric and lo0 < 0 < hi0:  # then each end alone, the other one fixed
        r, e = _search(lambda r: mse(r * lo0, hi), 24, 24, lo / lo0, e)
        lo = r * lo0 if r != lo / lo0 else lo
        r, e = _search(lambda r: mse(lo, r * hi0), 24, 24, hi / hi0, e)
        hi = r * hi0 if r != hi / hi0 else hi
    return lo, hi


def _entropy_range(smp, mn, mx, bits, signed, symmetric):
    # Values that map to 0 for every candidate (exact zeros; negatives when
    # unsigned symmetric) are left out: their error does not depend on the
    # threshold, and as a spike in bin 0 they would dominate the KL.
    if symmetric:
        v = np.abs(smp[smp != 0]) if signed else smp[smp > 0]
        levels = 1 << (bits - 1) if signed else 1 << bits
        extent = max(abs(mn), abs(mx)) if signed else max(mx, 0.0)
        t = _kl_threshold(v, levels, extent)
        return -t, t
    both = mn < 0 < mx
    levels = 1 << (bits - 1) if both else 1 << bits
    hi = _kl_threshold(smp[smp > 0], levels, max(mx, 0.0)) if mx > 0 else 0.0
    lo = -_kl_threshold(-smp[smp < 0], levels, max(-mn, 0.0)) if mn < 0 else 0.0
    return lo, hi


def _xlogx(c: np.ndarray) -> np.ndarray:
    return c * np.log(np.where(c > 0, c, 1.0))


def _kl_threshold(v: np.ndarray, levels: int, extent: float) -> float:
    """The KL-optimal clipping threshold of the non-negative values v (module docstring)."""
    if levels >= _HIST_BINS:
        return extent
    vmax = float(v.max()) if v.size else 0.0
    if not vmax > 0:
        return 0.0
    i, kl = _kl_curve(v, levels, vmax)
    best = int(np.argmin(kl))
    return min(float(i[best]) * vmax / _HIST_BINS, extent)


def _kl_curve(v: np.ndarray, levels: int, vmax: float):
    """(candidate numbers of kept bins i, smoothed KL(P || Q) of each) for v >= 0, vmax > 0."""
    nb = _HIST_BINS
    idx = np.minimum((v.astype(np.float64) * (nb / vmax)).astype(np.int64), nb - 1)
    c = np.bincount(idx, minlength=nb).astype(np.float64)
    n_all = c.sum()
    csum = np.concatenate(([0.0], np.cumsum(c)))
    nzsum = np.concatenate(([0.0], np.cumsum(c > 0)))
    xlx = np.concatenate(([0.0], np.cumsum(_xlogx(c))))

    i = np.arange(levels, nb + 1)  # candidate numbers of kept bins
    m = (i // levels)[:, None]
    start = np.arange(levels)[None, :] * m
    end = start + m
    end[:, -1] = i
    s = csum[end] - csum[start]  # counts per group
    nz = nzsum[end] - nzsum[start]  # non-empty bins per group
    kept = csum[i]
    eps = _KL_SMOOTHING / i
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where((nz > 0) & (kept[:, None] > 0), s / (nz * kept[:, None]), 0.0)
    out = n_all - kept  # clipped mass, folded into bin i-1
    c_last = c[i - 1]
    q_last = np.where(c_last > 0, a[:, -1], 0.0)
    p_log_p = (xlx[i - 1] + _xlogx(c_last + out)) / n_all - math.log(n_all)
    p_log_q = ((s * np.log(a + eps[:, None])).sum(axis=1) + out * np.log(q_last + eps)) / n_all \
        - math.log1p(_KL_SMOOTHING)
    return i, p_log_p - p_log_q
