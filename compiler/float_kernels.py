"""Numpy reference kernels for standard ONNX operators (default domain).

This module owns the *float semantics* of the compiler: it is the interpreter
used to run a model in full precision (e.g. to collect calibration statistics
over batches of samples) and the ground truth the quantized lowering is
checked against.  Each kernel follows the ONNX operator specification
(https://onnx.ai/onnx/operators/), including the opset-dependent variants, and
is written for throughput on batched activations: no Python loops over batch
or spatial positions on the hot operators (convolution, GEMM, pooling,
elementwise, normalisation, resize).

Registry contract (other code depends on it)::

    KERNELS: dict[str, Callable]   # ONNX op_type -> kernel
    kernel(*op_types)              # decorator registering a kernel

    def k(inputs, attrs, opset) -> list[np.ndarray]

* ``inputs``  - the node's inputs in order; an omitted optional input is
  ``None`` and trailing omitted inputs may be missing from the list.
* ``attrs``   - only the attributes present on the node, as Python values
  (int, float, str, list[int], list[float], list[str], np.ndarray for
  TENSOR attributes).  Kernels apply ONNX defaults themselves.
* ``opset``   - the model's default-domain opset version.
* Returns the list of outputs.  Optional outputs that are expensive (MaxPool
  ``Indices``) are computed lazily on first access, so callers that only read
  the outputs the node names pay only for those.

One optional hint extends ``attrs``: ``attrs[NUM_OUTPUTS]`` (the node's output
count).  Only Split needs it, and only when neither ``split`` nor
``num_outputs`` says how many pieces to produce.

Another lets a caller fuse an elementwise op into Conv: ``attrs[EPILOGUE]``,
a function ``f(y) -> array`` of the same shape and dtype applied to the
output; Conv may apply it to blocks of the output as they are produced
(while they are in cache), which gives the same values as applying it to
the whole result.

A third, ``attrs[EXACT]`` (truthy), asks Conv for the plain sum of products:
float32 3x3 convolutions otherwise may use Winograd's algorithm, whose
transforms round differently (a few ulps of the magnitudes involved) - not
exact on integer-valued data, which the integer interpreter relies on.

Unsupported attribute values raise ``NotImplementedError`` rather than
returning a silently wrong result.
"""

from __future__ import annotations

import itertools
import math
from functools import reduce
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

try:  # ml_dtypes ships with onnx; it only adds bfloat16 support here.
    import ml_dtypes as _mld
except ImportError:  # pragma: no cover - optional
    _mld = None

__all__ = ["KERNELS", "kernel", "NUM_OUTPUTS", "EPILOGUE", "EXACT", "onnx_dtype_to_numpy"]

# ============================================================================
# Registry
# ============================================================================

KERNELS: dict[str, Callable] = {}

#: Optional attrs key carrying the node's number of outputs (see module doc).
NUM_OUTPUTS = "_num_outputs"
#: Optional attrs key of Conv: elementwise function applied to its output.
EPILOGUE = "_epilogue"
#: Optional attrs key of Conv: truthy = exact sums (no Winograd), see module doc.
EXACT = "_exact"


def kernel(*op_types: str):
    """Register the decorated function as the kernel of each of ``op_types``."""

    def register(fn: Callable) -> Callable:
        for op in op_types:
            KERNELS[op] = fn
        return fn

    return register


class _LazyOutputs(list):
    """Output list whose optional entries are computed on first access.

    Entries stored as ``_Deferred`` are materialised by indexing or
    iteration, so ``zip(node.output, outs)`` never computes an output the node
    does not name.
    """

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        v = list.__getitem__(self, i)
        if isinstance(v, _Deferred):
            v = v.fn()
            list.__setitem__(self, i, v)
        return v

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


class _Deferred:
    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], np.ndarray]):
        self.fn = fn


# ============================================================================
# dtype helpers
# ============================================================================

_TP_TO_NP: dict[int, np.dtype] = {
    1: np.dtype(np.float32),
    2: np.dtype(np.uint8),
    3: np.dtype(np.int8),
    4: np.dtype(np.uint16),
    5: np.dtype(np.int16),
    6: np.dtype(np.int32),
    7: np.dtype(np.int64),
    9: np.dtype(np.bool_),
    10: np.dtype(np.float16),
    11: np.dtype(np.float64),
    12: np.dtype(np.uint32),
    13: np.dtype(np.uint64),
    14: np.dtype(np.complex64),
    15: np.dtype(np.complex128),
}
_TP_NAMES = {
    8: "STRING", 16: "BFLOAT16", 17: "FLOAT8E4M3FN", 18: "FLOAT8E4M3FNUZ",
    19: "FLOAT8E5M2", 20: "FLOAT8E5M2FNUZ", 21: "UINT4", 22: "INT4",
    23: "FLOAT4E2M1", 24: "FLOAT8E8M0", 25: "UINT2", 26: "INT2",
    27: "FLOAT6E2M3", 28: "FLOAT6E3M2",
}
# Low-precision float types are computed in float32 and rounded back once.
_LOWP: set[np.dtype] = {np.dtype(np.float16)}
if _mld is not None:
    _TP_TO_NP[16] = np.dtype(_mld.bfloat16)
    _LOWP.add(np.dtype(_mld.bfloat16))
    for _tp, _t in ((17, _mld.float8_e4m3fn), (18, _mld.float8_e4m3fnuz),
                    (19, _mld.float8_e5m2), (20, _mld.float8_e5m2fnuz),
                    (21, _mld.uint4), (22, _mld.int4), (23, _mld.float4_e2m1fn),
                    (24, _mld.float8_e8m0fnu), (25, _mld.uint2), (26, _mld.int2)):
        _TP_TO_NP[_tp] = np.dtype(_t)
    #: 8-bit and 4-bit floats: computed in float32 like float16.
    _SMALL_FLOATS = {np.dtype(_mld.float8_e4m3fn), np.dtype(_mld.float8_e4m3fnuz),
                     np.dtype(_mld.float8_e5m2), np.dtype(_mld.float8_e5m2fnuz),
                     np.dtype(_mld.float4_e2m1fn), np.dtype(_mld.float8_e8m0fnu)}
    #: sub-byte integers (one per byte in numpy): range-checked like int8.
    _SMALL_INTS = {np.dtype(_mld.int4), np.dtype(_mld.uint4),
                   np.dtype(_mld.int2), np.dtype(_mld.uint2)}
    _LOWP |= _SMALL_FLOATS
else:  # pragma: no cover
    _SMALL_FLOATS, _SMALL_INTS = set(), set()


def onnx_dtype_to_numpy(elem_type: int) -> np.dtype:
    """numpy dtype of an ONNX ``TensorProto.DataType`` value."""
    dt = _TP_TO_NP.get(int(elem_type))
    if dt is None:
        name = _TP_NAMES.get(int(elem_type), str(elem_type))
        raise NotImplementedError(f"ONNX element type {name} is not supported")
    return dt


def _is_float(dt: np.dtype) -> bool:
    return dt.kind == "f" or dt in _LOWP


def _up(x: np.ndarray) -> np.ndarray:
    """``x`` in the dtype we compute in: float16/bfloat16 widen to float32."""
    return x.astype(np.float32) if x.dtype in _LOWP else x


def _as(y, dt: np.dtype) -> np.ndarray:
    y = np.asarray(y)
    return y if y.dtype == dt else y.astype(dt)


def _saturate(y: np.ndarray, dt: np.dtype) -> np.ndarray:
    """Float -> ``dt`` the way Resize & co. store results: integers are
    rounded half-to-even and clipped to the type's range."""
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return np.clip(np.rint(y), info.min, info.max).astype(dt)
    if dt.kind == "b":
        return y != 0
    return _as(y, dt)


def _lowest(dt: np.dtype):
    if dt.kind in "iu":
        return np.iinfo(dt).min
    if dt.kind == "b":
        return False
    return -np.inf


def _highest(dt: np.dtype):
    if dt.kind in "iu":
        return np.iinfo(dt).max
    if dt.kind == "b":
        return True
    return np.inf


# ============================================================================
# Argument helpers
# ============================================================================


def _get(inputs: list, i: int):
    """Input ``i`` or None when omitted (trailing inputs may be absent)."""
    return inputs[i] if i < len(inputs) else None


def _ints(v) -> list[int] | None:
    """Attribute list or 1-D tensor input -> list of Python ints."""
    if v is None:
        return None
    if isinstance(v, np.ndarray):
        return [int(t) for t in v.reshape(-1)]
    if isinstance(v, (int, np.integer)):
        return [int(v)]
    return [int(t) for t in v]


def _scalar(v):
    """0-d / 1-element tensor -> numpy scalar."""
    return np.asarray(v).reshape(-1)[0]


def _axis(a, rank: int) -> int:
    a = int(a)
    if not -rank <= a < max(rank, 1):
        raise ValueError(f"axis {a} out of range for rank {rank}")
    return a + rank if a < 0 else a


def _axes(axes, rank: int) -> tuple[int, ...]:
    return tuple(sorted(_axis(a, rank) for a in axes))


def _spatial_pads(attrs: dict, in_sp, k_eff, strides) -> tuple[list, list]:
    """Begin/end padding of a sliding-window op (Conv, pools).

    SAME_* pads so that ``out = ceil(in / stride)``; the odd pixel goes at
    the end for SAME_UPPER and at the beginning for SAME_LOWER.
    """
    nd = len(in_sp)
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pb, pe = [], []
        for i in range(nd):
            out = -(-in_sp[i] // strides[i])
            total = max(0, (out - 1) * strides[i] + k_eff[i] - in_sp[i])
            small = total // 2
            if auto_pad == "SAME_UPPER":
                pb.append(small)
                pe.append(total - small)
            else:
                pb.append(total - small)
                pe.append(small)
        return pb, pe
    if auto_pad == "VALID":
        return [0] * nd, [0] * nd
    if auto_pad not in ("NOTSET", ""):
        raise NotImplementedError(f"auto_pad={auto_pad!r}")
    pads = _ints(attrs.get("pads")) or [0] * (2 * nd)
    return pads[:nd], pads[nd:]


def _pad_constant(x: np.ndarray, begin, end, value=0) -> np.ndarray:
    """Pad the trailing ``len(begin)`` axes of ``x`` with a constant.

    Writes into a preallocated buffer: np.pad is several times slower for
    the large activations this runs on.  Negative entries crop.
    """
    nd = len(begin)
    lead = x.ndim - nd
    if not any(begin) and not any(end):
        return x
    if min(begin) < 0 or min(end) < 0:
        crop = tuple(slice(None) for _ in range(lead)) + tuple(
            slice(max(0, -b), x.shape[lead + i] - max(0, -e))
            for i, (b, e) in enumerate(zip(begin, end))
        )
        x = x[crop]
        begin = [max(0, b) for b in begin]
        end = [max(0, e) for e in end]
    shape = x.shape[:lead] + tuple(
        x.shape[lead + i] + begin[i] + end[i] for i in range(nd)
    )
    out = np.empty(shape, dtype=x.dtype)
    if value == 0 or value is None:
        out.fill(0)
    else:
        out.fill(value)
    inner = (slice(None),) * lead + tuple(
        slice(begin[i], begin[i] + x.shape[lead + i]) for i in range(nd)
    )
    out[inner] = x
    return out


def _window_slice(lead: int, offs, strides, counts) -> tuple:
    """Index selecting, for every output position, the input element at
    kernel offset ``offs`` (already multiplied by the dilation)."""
    return (slice(None),) * lead + tuple(
        slice(o, o + (n - 1) * s + 1, s) for o, s, n in zip(offs, strides, counts)
    )


# ============================================================================
# Elementwise: unary math
# ============================================================================


def _unary(op_type: str, fn: Callable, upcast: bool = True) -> None:
    """Register an elementwise kernel ``y = fn(x, attrs)``.

    With ``upcast`` the math runs in float32 for float16/bfloat16 inputs so
    that transcendental functions are rounded once, not per step.
    """

    def k(inputs, attrs, opset):
        x = inputs[0]
        with np.errstate(all="ignore"):
            y = fn(_up(x) if upcast else x, attrs)
        return [y if y.dtype.kind == "b" else _as(y, x.dtype)]

    k.__name__ = f"k_{op_type}"
    k.__doc__ = f"ONNX {op_type} (elementwise)."
    KERNELS[op_type] = k


for _op, _fn in {
    "Abs": lambda x, a: np.abs(x),
    "Neg": lambda x, a: np.negative(x),
    "Floor": lambda x, a: np.floor(x),
    "Ceil": lambda x, a: np.ceil(x),
    "Round": lambda x, a: np.round(x),  # numpy rounds half to even, as ONNX
    "Sign": lambda x, a: np.sign(x),
    # np.clip's fused loop is ~2.5x faster than np.maximum on floats (same values)
    "Relu": lambda x, a: (np.clip(x, x.dtype.type(0), x.dtype.type(np.inf))
                          if x.dtype.kind == "f" else np.maximum(x, x.dtype.type(0))),
}.items():
    _unary(_op, _fn, upcast=False)

for _op, _fn in {
    "Exp": lambda x, a: np.exp(x),
    "Log": lambda x, a: np.log(x),
    "Sqrt": lambda x, a: np.sqrt(x),
    "Reciprocal": lambda x, a: np.reciprocal(x),
    "Sin": lambda x, a: np.sin(x),
    "Cos": lambda x, a: np.cos(x),
    "Tan": lambda x, a: np.tan(x),
    "Asin": lambda x, a: np.arcsin(x),
    "Acos": lambda x, a: np.arccos(x),
    "Atan": lambda x, a: np.arctan(x),
    "Sinh": lambda x, a: np.sinh(x),
    "Cosh": lambda x, a: np.cosh(x),
    "Asinh": lambda x, a: np.arcsinh(x),
    "Acosh": lambda x, a: np.arccosh(x),
    "Atanh": lambda x, a: np.arctanh(x),
    "Tanh": lambda x, a: np.tanh(x),
}.items():
    _unary(_op, _fn)


def _erf_series_coeffs(n: int = 14) -> np.ndarray:
    # Maclaurin series of erf(x)/x in t = x*x, highest power first (Horner).
    c = [2 / math.sqrt(math.pi) * (-1) ** k / (math.factorial(k) * (2 * k + 1))
         for k in range(n)]
    return np.array(c[::-1])


def _erfc_tail_fit() -> np.polynomial.Chebyshev:
    # For 0.5 <= z <= 6, erfc(z) = t*exp(-z*z + P(t)) with t = 1/(1+z/2);
    # P is smooth in t (this is the form of the classic Numerical Recipes
    # approximation).  We fit P once, at import, by Chebyshev interpolation
    # of exact libm values, to ~1e-15 instead of the classic 1e-7.
    def target(t):
        z = 2.0 / t - 2.0
        return np.array([math.log(math.erfc(v)) for v in z]) - np.log(t) + z * z

    return np.polynomial.Chebyshev.interpolate(target, 40, domain=[0.25, 0.8])


_ERF_SERIES = _erf_series_coeffs()
_ERFC_TAIL = _erfc_tail_fit()


def _erf(x: np.ndarray) -> np.ndarray:
    """erf in float64, accurate to a few ulp (scipy is not a dependency)."""
    x = np.asarray(x, dtype=np.float64)
    z = np.abs(x)
    out = np.empty_like(x)
    small = z < 0.5
    if small.any():
        xs = x[small]
        t = xs * xs
        acc = np.full_like(xs, _ERF_SERIES[0])
        for c in _ERF_SERIES[1:]:
            acc *= t
            acc += c
        out[small] = acc * xs
    mid = (z >= 0.5) & (z < 6.0)
    if mid.any():
        zm = z[mid]
        t = 1.0 / (1.0 + 0.5 * zm)
        erfc = t * np.exp(_ERFC_TAIL(t) - zm * zm)
        out[mid] = np.copysign(1.0 - erfc, x[mid])
    big = ~(small | mid)
    if big.any():  # erfc(6) < 2**-55: erf is +-1 in float64 (NaN stays NaN)
        out[big] = np.sign(x[big])
    return out


_unary("Erf", lambda x, a: _erf(x))


# ============================================================================
# Elementwise: activations
# ============================================================================


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp(-x) overflowing to inf for very negative x yields the correct 0.
    y = np.negative(x)
    np.exp(y, out=y)
    y += 1
    return np.reciprocal(y, out=y)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(x, x.dtype.type(0))


def _leaky_relu(x, a):
    return np.where(x < 0, x * x.dtype.type(a.get("alpha", 0.01)), x)


def _hard_sigmoid(x, a):
    y = x * x.dtype.type(a.get("alpha", 0.2))
    y += x.dtype.type(a.get("beta", 0.5))
    return np.clip(y, 0, 1, out=y)


def _hard_swish(x, a):
    y = x * x.dtype.type(1 / 6)
    y += x.dtype.type(0.5)
    np.clip(y, 0, 1, out=y)
    y *= x
    return y


def _elu(x, a):
    alpha = x.dtype.type(a.get("alpha", 1.0))
    return np.where(x < 0, np.expm1(np.minimum(x, 0)) * alpha, x)


def _selu(x, a):
    alpha = x.dtype.type(a.get("alpha", 1.67326319217681884765625))
    gamma = x.dtype.type(a.get("gamma", 1.05070102214050292968750))
    return np.where(x <= 0, np.expm1(np.minimum(x, 0)) * alpha, x) * gamma


def _celu(x, a):
    alpha = x.dtype.type(a.get("alpha", 1.0))
    return np.maximum(x, 0) + np.minimum(0, alpha * np.expm1(x / alpha))


def _gelu(x, a):
    approx = a.get("approximate", "none")
    if approx == "tanh":
        inner = x + x.dtype.type(0.044715) * x * x * x
        inner *= x.dtype.type(math.sqrt(2 / math.pi))
        return x.dtype.type(0.5) * x * (1 + np.tanh(inner))
    if approx != "none":
        raise NotImplementedError(f"Gelu approximate={approx!r}")
    return _as(0.5 * x * (1.0 + _erf(x * (1 / math.sqrt(2)))), x.dtype)


def _shrink(x, a):
    lambd = a.get("lambd", 0.5)
    bias = a.get("bias", 0.0)
    y = np.where(x < -lambd, x + bias, np.where(x > lambd, x - bias, 0))
    return y


for _op, _fn in {
    "LeakyRelu": _leaky_relu,
    "HardSigmoid": _hard_sigmoid,
    "HardSwish": _hard_swish,
    "Sigmoid": lambda x, a: _sigmoid(x),
    "Elu": _elu,
    "Selu": _selu,
    "Celu": _celu,
    "Softplus": lambda x, a: _softplus(x),
    "Softsign": lambda x, a: x / (1 + np.abs(x)),
    "Mish": lambda x, a: x * np.tanh(_softplus(x)),
    "Gelu": _gelu,
    "Swish": lambda x, a: x * _sigmoid(x * x.dtype.type(a.get("alpha", 1.0))),
    "ThresholdedRelu": lambda x, a: np.where(x > a.get("alpha", 1.0), x, 0),
    "Shrink": _shrink,
}.items():
    _unary(_op, _fn)


@kernel("PRelu")
def k_prelu(inputs, attrs, opset):
    """PRelu: slope broadcasts unidirectionally onto x."""
    x, slope = inputs[0], inputs[1]
    if opset < 7 and slope.ndim == 1 and x.ndim > 2 and slope.size == x.shape[1]:
        slope = slope.reshape((-1,) + (1,) * (x.ndim - 2))  # pre-broadcast era
    return [_as(np.where(x < 0, x * slope, x), x.dtype)]


@kernel("Clip")
def k_clip(inputs, attrs, opset):
    """Clip: bounds are attributes before opset 11, optional inputs after.

    When min > max every element becomes max, which minimum(maximum()) gives.
    """
    x = inputs[0]
    if opset < 11:
        lo, hi = attrs.get("min"), attrs.get("max")
    else:
        lo, hi = _get(inputs, 1), _get(inputs, 2)
        lo = None if lo is None or lo.size == 0 else _scalar(lo)
        hi = None if hi is None or hi.size == 0 else _scalar(hi)
    if x.dtype.kind == "f" and (lo is not None or hi is not None):
        # np.clip is min(max(x, lo), hi) too, and ~2.5x faster than the
        # pair (its fused loop); a missing bound is an infinite one.
        t = x.dtype.type
        return [np.clip(x, t(-np.inf) if lo is None else np.asarray(lo).astype(x.dtype),
                        t(np.inf) if hi is None else np.asarray(hi).astype(x.dtype))]
    y = x
    if lo is not None:
        y = np.maximum(y, np.asarray(lo).astype(x.dtype))
    if hi is not None:
        y = np.minimum(y, np.asarray(hi).astype(x.dtype))
    return [y if y is not x else x.copy()]


# ============================================================================
# Elementwise: binary arithmetic, comparison, logic, variadic
# ============================================================================


def _binary(op_type: str, fn: Callable) -> None:
    def k(inputs, attrs, opset):
        a, b = inputs[0], inputs[1]
        with np.errstate(all="ignore"):
            y = fn(a, b)
        return [_as(y, a.dtype) if y.dtype.kind != "b" else y]

    k.__name__ = f"k_{op_type}"
    k.__doc__ = f"ONNX {op_type} (numpy broadcasting)."
    KERNELS[op_type] = k


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind not in "iu":
        return np.divide(a, b)
    # Integer Div truncates toward zero (C semantics), unlike numpy's //.
    q = np.floor_divide(a, b)
    if a.dtype.kind == "i":
        fix = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
        q = q + fix.astype(q.dtype)
    return q


for _op, _fn in {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Div": _div,
    "Equal": np.equal,
    "Less": np.less,
    "LessOrEqual": np.less_equal,
    "Greater": np.greater,
    "GreaterOrEqual": np.greater_equal,
    "And": np.logical_and,
    "Or": np.logical_or,
    "Xor": np.logical_xor,
    "BitwiseAnd": np.bitwise_and,
    "BitwiseOr": np.bitwise_or,
    "BitwiseXor": np.bitwise_xor,
}.items():
    _binary(_op, _fn)

_unary("Not", lambda x, a: np.logical_not(x), upcast=False)
_unary("BitwiseNot", lambda x, a: np.invert(x), upcast=False)
_unary("IsNaN", lambda x, a: np.isnan(x), upcast=False)


@kernel("IsInf")
def k_isinf(inputs, attrs, opset):
    x = inputs[0]
    pos, neg = attrs.get("detect_positive", 1), attrs.get("detect_negative", 1)
    y = np.isinf(x)
    if not pos:
        y &= x < 0
    if not neg:
        y &= x > 0
    return [y]


@kernel("Mod")
def k_mod(inputs, attrs, opset):
    a, b = inputs[0], inputs[1]
    with np.errstate(all="ignore"):
        if attrs.get("fmod", 0):
            y = np.fmod(_up(a), _up(b))  # sign of the dividend (C fmod)
        else:
            y = np.mod(_up(a), _up(b))  # sign of the divisor (Python %)
    return [_as(y, a.dtype)]


@kernel("BitShift")
def k_bitshift(inputs, attrs, opset):
    a, b = inputs[0], inputs[1]
    direction = attrs.get("direction")
    if direction == "LEFT":
        return [_as(np.left_shift(a, b), a.dtype)]
    if direction == "RIGHT":
        return [_as(np.right_shift(a, b), a.dtype)]
    raise NotImplementedError(f"BitShift direction={direction!r}")


@kernel("Pow")
def k_pow(inputs, attrs, opset):
    """Pow: the result has the base's type; exponent type may differ."""
    x, y = inputs[0], inputs[1]
    dt = x.dtype
    with np.errstate(all="ignore"):
        if _is_float(dt):
            xc = _up(x)
            yc = _up(y) if _is_float(y.dtype) else y
            r = np.power(xc, yc.astype(xc.dtype) if yc.dtype.kind in "iub" else yc)
        elif _is_float(y.dtype) or (y.dtype.kind == "i" and (y < 0).any()):
            r = np.power(x.astype(np.float64), y.astype(np.float64))
            r = np.trunc(r)
        else:
            r = np.power(x, y.astype(x.dtype))
    return [_as(r, dt)]


def _variadic(op_type: str, fn: Callable) -> None:
    def k(inputs, attrs, opset):
        xs = [t for t in inputs if t is not None]
        dt = xs[0].dtype
        with np.errstate(all="ignore"):
            y = reduce(fn, [_up(t) for t in xs])
        return [_as(y, dt)]

    k.__name__ = f"k_{op_type}"
    KERNELS[op_type] = k


_variadic("Max", np.maximum)
_variadic("Min", np.minimum)
_variadic("Sum", np.add)


@kernel("Mean")
def k_mean(inputs, attrs, opset):
    xs = [t for t in inputs if t is not None]
    dt = xs[0].dtype
    y = reduce(np.add, [_up(t) for t in xs])
    return [_as(y / len(xs), dt)]


@kernel("Where")
def k_where(inputs, attrs, opset):
    return [np.where(inputs[0], inputs[1], inputs[2])]


# ============================================================================
# Matrix products
# ============================================================================


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if b.ndim == 2 and a.ndim > 2:
        # One large GEMM instead of numpy looping a small one per batch entry.
        y = a.reshape(-1, a.shape[-1]) @ b
        return y.reshape(a.shape[:-1] + (b.shape[-1],))
    return np.matmul(a, b)


@kernel("MatMul")
def k_matmul(inputs, attrs, opset):
    a, b = inputs[0], inputs[1]
    return [_as(_matmul(_up(a), _up(b)), a.dtype)]


@kernel("Gemm")
def k_gemm(inputs, attrs, opset):
    """Gemm: Y = alpha * A' @ B' + beta * C with C broadcast onto Y."""
    a, b, c = inputs[0], inputs[1], _get(inputs, 2)
    dt = a.dtype
    a, b = _up(a), _up(b)
    if attrs.get("transA", 0):
        a = a.T
    if attrs.get("transB", 0):
        b = b.T
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    y = a @ b
    if not _is_float(y.dtype):
        y = y * alpha if alpha != 1.0 else y
        if c is not None and beta != 0:
            y = y + c * beta
        return [_as(y, dt)]
    if alpha != 1.0:
        y *= y.dtype.type(alpha)
    if c is not None and beta != 0:
        c = _up(c)
        if beta == 1.0:
            y += c
        else:
            y += c * c.dtype.type(beta)
    return [_as(y, dt)]


@kernel("Einsum")
def k_einsum(inputs, attrs, opset):
    eq = attrs["equation"].replace(" ", "")
    xs = [_up(t) for t in inputs]
    y = np.einsum(eq, *xs, optimize=len(xs) > 1)
    return [_as(y, inputs[0].dtype)]


# ============================================================================
# Convolution
# ============================================================================

# Batch entries are processed in chunks whose im2col matrix stays around this
# many bytes: enough work per BLAS call, but cache-resident and bounded
# memory on 224x224 inputs.
_IM2COL_BYTES = 1 << 22


def _conv_im2col(x, w, b, strides, dils, pb, pe, group) -> np.ndarray:
    """`_conv` on an explicitly padded input with an exact im2col (no
    garbage columns): used where the flat layout would waste too much.

    Three strategies: 1x1 kernels are a single matmul over channels;
    depthwise-style kernels (one input channel per group) accumulate
    prod(K) shifted slices scaled per channel; everything else is im2col +
    batched GEMM per group.
    """
    N, C = x.shape[:2]
    M = w.shape[0]
    ks = w.shape[2:]
    nd = len(ks)
    G = group
    Cg, Mg = C // G, M // G
    K = int(np.prod(ks)) if nd else 1
    xp = _pad_constant(x, pb, pe)
    sp = xp.shape[2:]
    k_eff = [(ks[i] - 1) * dils[i] + 1 for i in range(nd)]
    out_sp = [(sp[i] - k_eff[i]) // strides[i] + 1 for i in range(nd)]
    if min(out_sp, default=1) <= 0:
        raise ValueError("Conv output would be empty")
    P = int(np.prod(out_sp))
    dt = x.dtype

    if K == 1:
        xs = xp[_window_slice(2, [0] * nd, strides, out_sp)]
        cols = xs.reshape(N, G, Cg, P)
        y = np.matmul(w.reshape(G, Mg, Cg), cols)  # (N, G, Mg, P)
    elif Cg == 1:
        y = np.zeros((N, G, Mg) + tuple(out_sp), dtype=dt)
        wk = w.reshape(G, Mg, K)
        bshape = (1, G, Mg) + (1,) * nd
        tmp = np.empty_like(y)
        for ki, offs in enumerate(itertools.product(*[range(k) for k in ks])):
            sl = xp[_window_slice(2, [o * d for o, d in zip(offs, dils)],
                                  strides, out_sp)]
            np.multiply(sl[:, :, None], wk[:, :, ki].reshape(bshape), out=tmp)
            y += tmp
    else:
        # im2col as a strided view: [N, C, *out, *K] (stride/dilation by slicing)
        win = sliding_window_view(xp, k_eff, axis=tuple(range(2, 2 + nd)))
        win = win[(slice(None), slice(None))
                  + tuple(slice(None, None, s) for s in strides)
                  + tuple(slice(None, None, d) for d in dils)]
        win = win[(slice(None), slice(None)) + tuple(slice(0, o) for o in out_sp)]
        perm = (0, 1) + tuple(range(2 + nd, 2 + 2 * nd)) + tuple(range(2, 2 + nd))
        win = win.transpose(perm)  # [N, C, *K, *out]
        wg = w.reshape(G, Mg, Cg * K)
        y = np.empty((N, G, Mg, P), dtype=dt)
        per_img = C * K * P * dt.itemsize
        step = max(1, _IM2COL_BYTES // max(per_img, 1))
        for n0 in range(0, N, step):
            cols = win[n0:n0 + step].reshape(-1, G, Cg * K, P)
            np.matmul(wg, cols, out=y[n0:n0 + step])
    y = y.reshape((N, M) + tuple(out_sp))
    if b is not None:
        y += b.reshape((1, M) + (1,) * nd).astype(dt, copy=False)
    return y


# Samples are processed in blocks whose working buffers stay around this
# many bytes: enough work per numpy/BLAS call, bounded memory on large inputs.
_CONV_BLOCK_BYTES = 1 << 21
# Use the separator-free last axis of `_FlatLayout` where it applies.
_FLAT_WRAP = True


class _FlatLayout:
    """Zero-padded input laid out so every kernel tap is one contiguous slice.

    Each sample (of ``rows`` channels) occupies a flat block of ``S``
    elements per channel; output position ``o`` of sample ``n`` is flat index
    ``n*S + sum(o_i * rs_i)``, and tap ``t`` reads the input at that index
    plus ``taps[t][1]`` in phase ``taps[t][0]``.  Indices that are not a valid
    output ("garbage" columns between rows and samples) are computed and
    dropped, so a whole convolution is a few long contiguous operations
    instead of many short strided ones.

    All strides 1: samples (and rows, for all axes but the last) are
    separated by just enough zeros for the larger of the begin/end paddings,
    shared by the neighbours.  When the last axis keeps its size ("same"
    padding) it gets no separator at all: a tap shifted by ``delta`` columns
    reads a copy of the input ("plane") whose ``|delta|`` columns that would
    wrap into the neighbouring row are zero, so output rows are contiguous.
    Otherwise the padded input is split into prod(strides) phases (the
    polyphase decomposition), each a stride-1 problem with blocks of
    ``out + (k_eff - 1) // stride`` per axis.
    """

    def __init__(self, in_sp, ks, strides, dils, pb, out_sp, wrap_wide: bool = False):
        nd = len(ks)
        k_eff = [(ks[i] - 1) * dils[i] + 1 for i in range(nd)]
        self.in_sp, self.out_sp = tuple(in_sp), tuple(out_sp)
        self.stripes = None
        if all(s == 1 for s in strides):
            pe = [out_sp[i] + k_eff[i] - 1 - in_sp[i] - pb[i] for i in range(nd)]
            ext = [in_sp[i] + max(pb[i], pe[i], out_sp[i] - in_sp[i], 0) for i in range(nd)]
            last, W = nd - 1, in_sp[nd - 1]
            deltas = [k * dils[last] - pb[last] for k in range(ks[last])]
            # worth its extra input planes when the separator is >= 1/16 of a
            # row, or when they are cheap next to the output (`wrap_wide`)
            wrap = (_FLAT_WRAP and out_sp[last] == W and all(abs(d) < W for d in deltas)
                    and (wrap_wide or 16 * (ext[last] - W) >= W))
            full = [(slice(0, in_sp[i]), slice(0, in_sp[i])) for i in range(nd)]
            if wrap:
                ext[last] = W
                planes = sorted(set(deltas))
                fills = [full] * len(planes)  # whole rows: long contiguous copies
                # then the |delta| columns a shifted read wraps into become 0
                self.stripes = [None if d == 0 else slice(W + d, W) if d < 0 else slice(0, d)
                                for d in planes]
            else:
                planes = [0]
                fills = [full]
            rs = [int(np.prod(ext[i + 1:])) for i in range(nd)]
            # data at block coordinate h (no shift) after `lead` zeros: the
            # read index lead + q + sum((k*d - pb) * rs) = q + sum(k*d*rs)
            self.lead = sum(pb[i] * rs[i] for i in range(nd))
            self.phases = planes
            self.taps = [
                (planes.index(kidx[last] * dils[last] - pb[last]) if wrap else 0,
                 sum(kidx[i] * dils[i] * rs[i] for i in range(nd)))
                for kidx in itertools.product(*[range(k) for k in ks])]
        else:
            ext = [out_sp[i] + (k_eff[i] - 1) // strides[i] for i in range(nd)]
            self.phases = list(itertools.product(*[range(s) for s in strides]))
            shifts = [[((k * dils[i]) // strides[i], (k * dils[i]) % strides[i])
                       for k in range(ks[i])] for i in range(nd)]
            fills = []
            for ph in self.phases:
                f = []
                for i in range(nd):
                    a, s = ph[i], strides[i]
                    # phase coordinate r holds input coordinate a + s*r - pb
                    lo = max(0, -((a - pb[i]) // s))
                    hi = min(ext[i], (in_sp[i] - 1 + pb[i] - a) // s + 1)
                    if hi <= lo:
                        f = None
                        break
                    src0 = a + s * lo - pb[i]
                    f.append((slice(lo, hi), slice(src0, src0 + s * (hi - lo - 1) + 1, s)))
                fills.append(f)
            rs = [int(np.prod(ext[i + 1:])) for i in range(nd)]
            phase_index = {ph: j for j, ph in enumerate(self.phases)}
            self.lead = 0
            self.taps = [(phase_index[tuple(s[1] for s in sh)],
                          sum(sh[i][0] * rs[i] for i in range(nd)))
                         for sh in itertools.product(*shifts)]
        self.ext = tuple(ext)
        self.S = int(np.prod(ext))
        self.fills = fills
        self.span = max(off for _, off in self.taps)

    def buffer(self, rows: int, nsamp: int, dtype) -> np.ndarray:
        return np.zeros((len(self.phases), rows, self.lead + nsamp * self.S + self.span + 1),
                        dtype=dtype)

    def fill(self, buf: np.ndarray, x: np.ndarray) -> None:
        """Writes ``x`` [rows, nsamp, *in_sp] (any strides) into ``buf``."""
        rows, nsamp = x.shape[:2]
        L = nsamp * self.S
        for j, f in enumerate(self.fills):
            if f is None:
                continue
            dst = buf[j, :, self.lead:self.lead + L].reshape((rows, nsamp) + self.ext)
            dst[(slice(None), slice(None)) + tuple(d for d, _ in f)] = \
                x[(slice(None), slice(None)) + tuple(s for _, s in f)]
            if self.stripes is not None and self.stripes[j] is not None:
                buf[j, :, self.lead:self.lead + L].reshape(rows, -1, self.ext[-1])[
                    :, :, self.stripes[j]] = 0

    def valid(self, flat: np.ndarray) -> np.ndarray:
        """[rows, nsamp*S] result on the flat grid -> [rows, nsamp, *out] view."""
        rows = flat.shape[0]
        v = flat.reshape((rows, -1) + self.ext)
        return v[(slice(None), slice(None)) + tuple(slice(0, o) for o in self.out_sp)]


def _conv_blocks(N: int, per_sample_bytes: int) -> int:
    return max(1, min(N, _CONV_BLOCK_BYTES // max(per_sample_bytes, 1)))


def _conv_depthwise(x, w, b, lay: _FlatLayout, out_sp, epi=None) -> np.ndarray:
    """Depthwise (one input channel per output channel): per-tap scaled sums.

    Every (sample, channel) pair is its own single-channel image of the flat
    layout, so each tap is one multiply-accumulate over a contiguous block;
    the per-channel weights are expanded along the block once per call.
    """
    N, C = x.shape[:2]
    dt = x.dtype
    S = lay.S
    K = len(lay.taps)
    wk = w.reshape(C, K)
    # wimg[t] = w[:, t] repeated over each channel's S positions: [K, C*S]
    wimg = np.repeat(wk.T, S, axis=1)
    y = np.empty((N, C) + tuple(out_sp), dtype=dt)
    bb = None if b is None else b.reshape((1, C) + (1,) * len(out_sp)).astype(dt, copy=False)
    nb = _conv_blocks(N, C * S * dt.itemsize * (2 + len(lay.phases)))
    buf = acc = tmp = None
    for n0 in range(0, N, nb):
        k = min(nb, N - n0)
        if buf is None or k != nb:
            buf = lay.buffer(1, k * C, dt)
            acc = np.empty((k, C * S), dtype=dt)
            tmp = np.empty_like(acc)
        lay.fill(buf, x[n0:n0 + k].reshape((1, k * C) + lay.in_sp))
        L = k * C * S
        for t, (ph, off) in enumerate(lay.taps):
            src = buf[ph, 0, off:off + L].reshape(k, C * S)
            if t == 0:
                np.multiply(src, wimg[0], out=acc)
            else:
                np.multiply(src, wimg[t], out=tmp)
                acc += tmp
        res = lay.valid(acc.reshape(1, L))[0].reshape((k, C) + tuple(out_sp))
        if bb is None:
            y[n0:n0 + k] = res
        else:
            np.add(res, bb, out=y[n0:n0 + k])
        if epi is not None:
            y[n0:n0 + k] = epi(y[n0:n0 + k])
    return y


def _conv_gemm(x, w, b, lay: _FlatLayout, out_sp, G, epi=None) -> np.ndarray:
    """im2col on the flat layout (one contiguous copy per tap) + one GEMM
    per group and block of samples."""
    N, C = x.shape[:2]
    M = w.shape[0]
    Cg, Mg = C // G, M // G
    K = len(lay.taps)
    dt = x.dtype
    S = lay.S
    nd = len(out_sp)
    # columns ordered (tap, channel) so each tap fills one contiguous row block
    wg = np.ascontiguousarray(w.reshape(G, Mg, Cg, K).transpose(0, 1, 3, 2).reshape(G, Mg, K * Cg))
    y = np.empty((N, M) + tuple(out_sp), dtype=dt)
    bb = None if b is None else b.reshape((1, M) + (1,) * nd).astype(dt, copy=False)
    nb = _conv_blocks(N, (K * Cg + C * len(lay.phases) + Mg) * S * dt.itemsize)
    xt = x.transpose((1, 0) + tuple(range(2, 2 + nd)))  # [C, N, *in]
    buf = cols = None
    for n0 in range(0, N, nb):
        k = min(nb, N - n0)
        L = k * S
        if buf is None or k != nb:
            buf = lay.buffer(C, k, dt)
            cols = np.empty((K, Cg, L), dtype=dt)
        lay.fill(buf, xt[:, n0:n0 + k])
        for g in range(G):
            c0 = g * Cg
            for t, (ph, off) in enumerate(lay.taps):
                cols[t] = buf[ph, c0:c0 + Cg, off:off + L]
            r = wg[g] @ cols.reshape(K * Cg, L)  # [Mg, k*S]
            res = lay.valid(r).swapaxes(0, 1)  # [k, Mg, *out]
            dst = y[n0:n0 + k, g * Mg:(g + 1) * Mg]
            if bb is None:
                dst[...] = res
            else:
                np.add(res, bb[:, g * Mg:(g + 1) * Mg], out=dst)
        if epi is not None:
            y[n0:n0 + k] = epi(y[n0:n0 + k])
    return y


def _conv_gemm_same(x, w, b, ks, dils, pb, G, epi=None) -> np.ndarray:
    """Stride-1 convolution whose output has the input's size ("same" pads).

    The im2col row block of each tap is the input shifted by a constant
    flat offset: one long contiguous copy per tap, then the positions whose
    read falls in the padding (outside the image along some axis) are
    zeroed - slabs for the outer axes, single columns for the last.  No
    padded copy of the input, no discarded positions; one GEMM per group
    and block of samples.
    """
    N, C = x.shape[:2]
    M = w.shape[0]
    sp = tuple(x.shape[2:])
    nd = len(sp)
    Cg, Mg = C // G, M // G
    P = int(np.prod(sp))
    dt = x.dtype
    rs = [int(np.prod(sp[i + 1:])) for i in range(nd)]
    taps = []  # (flat offset, [(axis, zeroed output slice)]) or None (all padding)
    for kidx in itertools.product(*[range(k) for k in ks]):
        sh = [kidx[i] * dils[i] - pb[i] for i in range(nd)]
        if any(abs(sh[i]) >= sp[i] for i in range(nd)):
            taps.append(None)
            continue
        stripes = [(i, slice(0, -sh[i]) if sh[i] < 0 else slice(sp[i] - sh[i], sp[i]))
                   for i in range(nd) if sh[i]]
        taps.append((sum(sh[i] * rs[i] for i in range(nd)), stripes))
    K = len(taps)
    wg = np.ascontiguousarray(w.reshape(G, Mg, Cg, K).transpose(0, 1, 3, 2).reshape(G, Mg, K * Cg))
    y = np.empty((N, M) + sp, dtype=dt)
    bb = None if b is None else b.reshape(1, M, 1).astype(dt, copy=False)
    yv = y.reshape(N, M, P)
    xv = x.reshape(N, C, P)
    nb = _conv_blocks(N, (K * Cg + Mg) * P * dt.itemsize)
    cols = None
    for n0 in range(0, N, nb):
        k = min(nb, N - n0)
        if cols is None or cols.shape[2] != k:
            cols = np.empty((K, Cg, k, P), dtype=dt)
        for g in range(G):
            src = xv[n0:n0 + k, g * Cg:(g + 1) * Cg].transpose(1, 0, 2)  # [Cg, k, P]
            for t, tap in enumerate(taps):
                dst = cols[t]
                if tap is None:
                    dst.fill(0)
                    continue
                off, stripes = tap
                lo, hi = max(0, -off), P - max(0, off)
                dst[:, :, lo:hi] = src[:, :, lo + off:hi + off]
                grid = dst.reshape((Cg, k) + sp)
                for i, sl in stripes:
                    grid[(slice(None), slice(None)) + (slice(None),) * i + (sl,)] = 0
            r = wg[g] @ cols.reshape(K * Cg, k * P)  # [Mg, k*P]
            res = r.reshape(Mg, k, P).swapaxes(0, 1)
            dst = yv[n0:n0 + k, g * Mg:(g + 1) * Mg]
            if bb is None:
                dst[...] = res
            else:
                np.add(res, bb[:, g * Mg:(g + 1) * Mg], out=dst)
        if epi is not None:
            y[n0:n0 + k] = epi(y[n0:n0 + k])
    return y


# Winograd F(2x2, 3x3): the weight transform G g G^T as one [16, 9] matrix on
# flattened 3x3 kernels (row 4a+b = sum_ij G[a,i] G[b,j] w[3i+j]); the input
# and output transforms B^T, A^T are +-1 sums (`_wino_bt`, `_conv_winograd`).
_WINO_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
_WINO_GG = np.kron(_WINO_G, _WINO_G)
# Blocks of samples keep the Winograd working buffers around this many bytes.
_WINO_BLOCK_BYTES = 1 << 23
# Elements per transposing copy into the tile layout (cache blocking: groups
# of whole sample-channel images).
_WINO_COPY_ELEMS = 8192


def _wino_pays(N: int, C: int, M: int, out_sp) -> bool:
    """Whether `_conv_winograd` beats the direct GEMM paths (measured with
    single-threaded OpenBLAS on 4x4 to 224x224 images).

    Its transforms cost ~(C + M) per output and it saves 5/9 of the direct
    GEMM's ~C*M, so it needs enough channels (harmonic mean of C and M) -
    more on larger images, where the direct GEMM runs more efficiently - and
    enough outputs per weight to pay for transforming the weights.
    """
    P = out_sp[0] * out_sp[1]
    need = 16 if P <= 64 else 24 if P <= 256 else 64
    return N * P >= 256 and 2 * C * M >= need * (C + M)


def _finite(a: np.ndarray) -> bool:
    """No inf or nan in ``a``: one BLAS dot product (a sum of squares that
    overflows also says no, which only costs the fast path)."""
    v = a.reshape(-1)
    return bool(np.isfinite(np.dot(v, v)))


def _wino_bt(src: np.ndarray, axis: int, n: int, out: np.ndarray) -> None:
    """out[0..3] = B^T (d0, d1, d2, d3) = (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
    for the n tiles along ``axis`` of ``src`` (tile i reads d_r at 2i + r)."""
    lead = (slice(None),) * axis
    d0, d1, d2, d3 = (src[lead + (slice(r, r + 2 * n, 2),)] for r in range(4))
    np.subtract(d0, d2, out=out[0])
    np.add(d1, d2, out=out[1])
    np.subtract(d2, d1, out=out[2])
    np.subtract(d1, d3, out=out[3])


def _conv_winograd(x, w, b, pb, pe, epi=None) -> np.ndarray:
    """3x3, stride-1, dilation-1, single-group 2-D convolution by Winograd's
    minimal filtering F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms for
    Convolutional Neural Networks", CVPR 2016).

    Output tile (2x2) = A^T [U * (B^T d B)] A for its 4x4 input tile d and
    the transformed kernels U = G g G^T: the 16 elementwise products over
    channels are 16 GEMMs [M, C] x [C, tiles*samples], 16/36 of the direct
    multiply-adds.  U is computed in float64 (then rounded once); the B and A
    transforms are sums and differences, so the result differs from direct
    summation by rounding only (measured <= 6e-7 of the output's magnitude on
    random data) - but not exactly, hence EXACT.  Inputs must be finite: an
    inf would reach every output of its tiles (as nan, through inf - inf).

    Layout: the zero-padded input block is [H, W, samples*C], so selecting
    tile rows and columns is slicing outer axes with long contiguous inner
    runs; the GEMM writes [M, (tile row, tile col, sample)] so the output
    transform leaves [M, H, W, samples] and the block is one transposing
    copy.  The bias is added at transformed position (1, 1), which A^T A
    passes to every output with weight 1.
    """
    N, C, H, W = x.shape
    M = w.shape[0]
    dt = x.dtype
    Ho, Wo = H + pb[0] + pe[0] - 2, W + pb[1] + pe[1] - 2
    th, tw = -(-Ho // 2), -(-Wo // 2)
    T = th * tw
    Hp, Wp = 2 * th + 2, 2 * tw + 2  # >= the padded input, Ho + 2 x Wo + 2
    U = (_WINO_GG @ w.reshape(M * C, 9).T.astype(np.float64)).astype(dt).reshape(16, M, C)
    bb = None if b is None else b.astype(dt).reshape(M, 1)
    y = np.empty((N, M, Ho, Wo), dtype=dt)
    # per sample: xp, R, V over C channels; Mt, Z, Yt, tmp over M
    per = C * (Hp * Wp + 4 * th * Wp + 16 * T) + 29 * M * T
    nb = max(1, min(N, _WINO_BLOCK_BYTES // (per * dt.itemsize)))
    nb = -(-N // -(-N // nb))  # equal blocks
    ws = np.empty(per * nb, dtype=dt)
    r0, r1, c0, c1 = pb[0], pb[0] + H, pb[1], pb[1] + W
    rows = max(1, _WINO_COPY_ELEMS // (H * W))
    for n0 in range(0, N, nb):
        k = min(nb, N - n0)
        KC, L = k * C, T * k
        views, off = [], 0
        for shape in ((Hp, Wp, KC), (4, th, Wp, KC), (4, 4, th, tw, KC), (16, M, L),
                      (2, 4 * M * L), (M, th, 2, tw, 2, k), (M, th, tw, k)):
            size = math.prod(shape)
            views.append(ws[off:off + size].reshape(shape))
            off += size
        xp, R, V, Mt, Z, Yt, tmp = views
        # padding (ws holds stale data), then the block, transposed in
        # cache-sized groups of sample-channel rows
        xp[:r0] = 0
        xp[r1:] = 0
        xp[r0:r1, :c0] = 0
        xp[r0:r1, c1:] = 0
        xs = x[n0:n0 + k].reshape(KC, H, W)
        inner = xp[r0:r1, c0:c1]
        for j in range(0, KC, rows):
            inner[:, :, j:j + rows] = xs[j:j + rows].transpose(1, 2, 0)
        _wino_bt(xp, 0, th, R)  # B^T d: rows
        for a in range(4):
            _wino_bt(R[a], 1, tw, V[a])  # (B^T d) B: columns
        np.matmul(U, V.reshape(16, L, C).transpose(0, 2, 1), out=Mt)
        if bb is not None:
            Mt[5] += bb
        # A^T m A: rows (m0 + m1 + m2, m1 - m2 - m3), then columns
        Mv = Mt.reshape(4, 4 * M * L)
        np.add(Mv[0], Mv[1], out=Z[0])
        Z[0] += Mv[2]
        np.subtract(Mv[1], Mv[2], out=Z[1])
        Z[1] -= Mv[3]
        for p in range(2):
            zp = Z[p].reshape(4, M, th, tw, k)
            np.add(zp[0], zp[1], out=tmp)
            np.add(tmp, zp[2], out=Yt[:, :, p, :, 0])
            np.subtract(zp[1], zp[2], out=tmp)
            np.subtract(tmp, zp[3], out=Yt[:, :, p, :, 1])
        y[n0:n0 + k] = Yt.reshape(M, 2 * th, 2 * tw, k)[:, :Ho, :Wo].transpose(3, 0, 1, 2)
        if epi is not None:
            y[n0:n0 + k] = epi(y[n0:n0 + k])
    return y


def _epi(y: np.ndarray, epi) -> np.ndarray:
    return y if epi is None else epi(y)


def _conv_pointwise(x, w, b, G, epi=None) -> np.ndarray:
    """1x1 kernel, stride 1, no padding: a matmul over channels per sample,
    in blocks of samples so bias and epilogue run on cache-resident data."""
    N, C = x.shape[:2]
    M = w.shape[0]
    sp = x.shape[2:]
    P = int(np.prod(sp))
    dt = x.dtype
    Cg, Mg = C // G, M // G
    xs = x.reshape(N, G, Cg, P)
    wg = w.reshape(G, Mg, Cg)
    y = np.empty((N, G, Mg, P), dtype=np.result_type(w.dtype, x.dtype))
    bb = None if b is None else b.reshape(1, G, Mg, 1).astype(y.dtype, copy=False)
    nb = _conv_blocks(N, (C + M) * P * dt.itemsize)
    for n0 in range(0, N, nb):
        blk = y[n0:n0 + nb]
        np.matmul(wg, xs[n0:n0 + nb], out=blk)  # [k, G, Mg, P]
        if bb is not None:
            blk += bb
        if epi is not None:
            blk[...] = epi(blk.reshape((-1, M) + tuple(sp))).reshape(blk.shape)
    return y.reshape((N, M) + tuple(sp))


def _conv(x, w, b, strides, dils, pb, pe, group, epi=None, exact=False) -> np.ndarray:
    """N-d convolution of x [N, C, *S] with w [M, C/group, *K] (cross-corr).

    1x1 kernels are a matmul over channels (after striding/padding);
    depthwise kernels (one input channel per group) are per-tap scaled sums
    and everything else im2col + one GEMM per group and block of samples,
    both on `_FlatLayout` (long contiguous operations, no strided copies).
    Where that layout would compute mostly discarded positions (large
    unpadded kernels on small images) the exact im2col path runs instead.
    float32 3x3 stride-1 single-group 2-D convolutions of finite data with
    enough channels (`_wino_pays`) use Winograd (`_conv_winograd`) unless
    ``exact`` (see EXACT).
    ``epi`` (see EPILOGUE) is applied to the output, block by block where
    the strategy works in blocks.
    """
    N, C = x.shape[:2]
    M = w.shape[0]
    ks = tuple(w.shape[2:])
    nd = len(ks)
    G = group
    if nd == 0 or x.size == 0 or w.size == 0 or min(pb) < 0 or min(pe) < 0:
        return _epi(_conv_im2col(x, w, b, strides, dils, pb, pe, group), epi)
    Cg, Mg = C // G, M // G
    in_sp = x.shape[2:]
    k_eff = [(ks[i] - 1) * dils[i] + 1 for i in range(nd)]
    out_sp = [(in_sp[i] + pb[i] + pe[i] - k_eff[i]) // strides[i] + 1 for i in range(nd)]
    if min(out_sp) <= 0:
        raise ValueError("Conv output would be empty")
    if all(k == 1 for k in ks):
        xs = _pad_constant(x, pb, pe)[_window_slice(2, [0] * nd, strides, out_sp)]
        return _conv_pointwise(np.ascontiguousarray(xs), w, b, G, epi)
    if (not exact and ks == (3, 3) and G == 1 and x.dtype == np.float32
            and w.dtype == np.float32 and all(s == 1 for s in strides)
            and all(d == 1 for d in dils) and _wino_pays(N, C, M, out_sp)
            and _finite(x) and _finite(w)):
        return _conv_winograd(x, w, b, pb, pe, epi)
    # wide rows too when the extra input planes (Cg per column shift) are
    # small next to the output channels whose extraction they speed up
    lay = _FlatLayout(in_sp, ks, strides, dils, pb, out_sp, wrap_wide=Cg * ks[-1] <= Mg)
    if Cg == 1 and G > 1:
        if Mg > 1:
            x = np.repeat(x, Mg, axis=1)
        return _conv_depthwise(x, w, b, lay, out_sp, epi)
    if all(s == 1 for s in strides) and tuple(out_sp) == tuple(in_sp):
        return _conv_gemm_same(x, w, b, ks, dils, pb, G, epi)
    if lay.S > 1.8 * int(np.prod(out_sp)):
        return _epi(_conv_im2col(x, w, b, strides, dils, pb, pe, group), epi)
    return _conv_gemm(x, w, b, lay, out_sp, G, epi)


def _conv_geometry(attrs, x, w):
    nd = x.ndim - 2
    ks = list(w.shape[2:])
    strides = _ints(attrs.get("strides")) or [1] * nd
    dils = _ints(attrs.get("dilations")) or [1] * nd
    k_eff = [(ks[i] - 1) * dils[i] + 1 for i in range(nd)]
    pb, pe = _spatial_pads(attrs, x.shape[2:], k_eff, strides)
    return strides, dils, pb, pe


@kernel("Conv")
def k_conv(inputs, attrs, opset):
    """Conv (1-D/2-D/3-D...), groups, dilations, strides, pads, auto_pad."""
    x, w, b = inputs[0], inputs[1], _get(inputs, 2)
    strides, dils, pb, pe = _conv_geometry(attrs, x, w)
    xc, wc = _up(x), _up(w).astype(_up(x).dtype, copy=False)
    bc = None if b is None else _up(b)
    epi = attrs.get(EPILOGUE)
    blockwise = epi if xc.dtype == x.dtype else None  # else after rounding to x.dtype
    y = _conv(xc, wc, bc, strides, dils, pb, pe, int(attrs.get("group", 1)), blockwise,
              exact=bool(attrs.get(EXACT)))
    y = _as(y, x.dtype)
    return [epi(y) if epi is not None and blockwise is None else y]


@kernel("ConvTranspose")
def k_conv_transpose(inputs, attrs, opset):
    """ConvTranspose as GEMM + col2im (scatter-add of prod(K) slices)."""
    x, w, b = inputs[0], inputs[1], _get(inputs, 2)
    dt = x.dtype
    xc, wc = _up(x), _up(w)
    N, C = x.shape[:2]
    in_sp = x.shape[2:]
    nd = len(in_sp)
    G = int(attrs.get("group", 1))
    Cg, Mg = C // G, w.shape[1]
    M = Mg * G
    ks = w.shape[2:]
    K = int(np.prod(ks))
    strides = _ints(attrs.get("strides")) or [1] * nd
    dils = _ints(attrs.get("dilations")) or [1] * nd
    opad = _ints(attrs.get("output_padding")) or [0] * nd
    auto_pad = attrs.get("auto_pad", "NOTSET")
    full = [(in_sp[i] - 1) * strides[i] + (ks[i] - 1) * dils[i] + 1 for i in range(nd)]
    out_shape = _ints(attrs.get("output_shape"))
    if out_shape is not None and len(out_shape) == nd + 2:
        out_shape = out_shape[2:]
    if out_shape is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out_shape = [in_sp[i] * strides[i] for i in range(nd)]
    if out_shape is not None:
        # Spec: pads are derived from output_shape; SAME_UPPER puts the
        # smaller half first, everything else the larger half.
        pb = []
        for i in range(nd):
            total = full[i] + opad[i] - out_shape[i]
            pb.append(total // 2 if auto_pad == "SAME_UPPER" else total - total // 2)
    else:
        pads = [0] * (2 * nd) if auto_pad == "VALID" else (
            _ints(attrs.get("pads")) or [0] * (2 * nd))
        pb = pads[:nd]
        out_shape = [full[i] + opad[i] - pads[i] - pads[nd + i] for i in range(nd)]

    # cols[n, g, (m, k), p] = sum_c w[g, c, m, k] * x[n, g, c, p]
    wt = wc.reshape(G, Cg, Mg * K).transpose(0, 2, 1)
    cols = np.matmul(wt, xc.reshape(N, G, Cg, -1))
    cols = cols.reshape((N, M) + tuple(ks) + tuple(in_sp))

    # Scatter into a buffer covering both the full result and the requested
    # window [pb, pb + out) (pads may be negative, out may exceed full).
    off = [max(0, -pb[i]) for i in range(nd)]
    buf_sp = [max(full[i], pb[i] + out_shape[i]) + off[i] for i in range(nd)]
    buf = np.zeros((N, M) + tuple(buf_sp), dtype=cols.dtype)
    for kidx in itertools.product(*[range(k) for k in ks]):
        start = [off[i] + kidx[i] * dils[i] for i in range(nd)]
        buf[_window_slice(2, start, strides, in_sp)] += cols[
            (slice(None), slice(None)) + kidx]
    y = buf[(slice(None), slice(None)) + tuple(
        slice(pb[i] + off[i], pb[i] + off[i] + out_shape[i]) for i in range(nd))]
    if b is not None:
        y = y + _up(b).reshape((1, M) + (1,) * nd)
    return [_as(y, dt)]


# ============================================================================
# Pooling
# ============================================================================


def _pool_geometry(attrs, in_sp):
    """(kernel, strides, dilations, out_sp, pads_begin, pads_end) of a pool.

    With ceil_mode the last window may overhang the end padding; it is kept
    only if it starts inside the input or the begin padding.
    """
    ks = _ints(attrs["kernel_shape"])
    nd = len(ks)
    strides = _ints(attrs.get("strides")) or [1] * nd
    dils = _ints(attrs.get("dilations")) or [1] * nd
    k_eff = [(ks[i] - 1) * dils[i] + 1 for i in range(nd)]
    pb, pe = _spatial_pads(attrs, in_sp, k_eff, strides)
    ceil = attrs.get("ceil_mode", 0)
    auto = attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "")
    out = []
    for i in range(nd):
        num = in_sp[i] + pb[i] + pe[i] - k_eff[i]
        if ceil and not auto:
            o = -(-num // strides[i]) + 1
            if (o - 1) * strides[i] >= in_sp[i] + pb[i]:
                o -= 1
        else:
            o = num // strides[i] + 1
        out.append(o)
    return ks, strides, dils, out, pb, pe


def _pool_input(x, ks, strides, dils, out, pb, fill):
    """x padded (with ``fill``) so every window of ``out`` lies inside it."""
    nd = len(ks)
    need = [(out[i] - 1) * strides[i] + (ks[i] - 1) * dils[i] + 1 for i in range(nd)]
    in_sp = x.shape[2:]
    end = [max(0, need[i] - pb[i] - in_sp[i]) for i in range(nd)]
    return _pad_constant(x, pb, end, fill)


def _kernel_offsets(ks, dils):
    for offs in itertools.product(*[range(k) for k in ks]):
        yield offs, [o * d for o, d in zip(offs, dils)]


def _window_reduce(xp, ks, strides, dils, out, op) -> np.ndarray:
    """``op`` (np.maximum / np.add) over every pooling window of ``xp``
    [N, C, *S], one spatial axis at a time: sum(K) strided passes instead of
    prod(K), the first ones over whole contiguous rows.  Returns a new array."""
    y = xp
    for i in range(len(ks)):
        lead = (slice(None),) * (2 + i)
        acc, owned = None, False
        for k in range(ks[i]):
            o = k * dils[i]
            sl = y[lead + (slice(o, o + (out[i] - 1) * strides[i] + 1, strides[i]),)]
            if acc is None:
                acc = sl
            elif not owned:
                acc, owned = op(acc, sl), True
            else:
                op(acc, sl, out=acc)
        y = acc
    return y.copy() if np.may_share_memory(y, xp) else y


@kernel("MaxPool")
def k_maxpool(inputs, attrs, opset):
    """MaxPool: running maximum over kernel offsets (strided views).

    The Indices output (flat index into x, row- or column-major per
    storage_order) is only computed if read.
    """
    x = inputs[0]
    ks, strides, dils, out, pb, pe = _pool_geometry(attrs, x.shape[2:])
    xp = _pool_input(x, ks, strides, dils, out, pb, _lowest(x.dtype))
    y = _window_reduce(xp, ks, strides, dils, out, np.maximum)

    def indices():
        nd = len(ks)
        in_sp = x.shape[2:]
        if attrs.get("storage_order", 0):
            mult = [int(np.prod(in_sp[:i])) for i in range(nd)]
        else:
            mult = [int(np.prod(in_sp[i + 1:])) for i in range(nd)]
        best, idx = None, None
        for _, offs in _kernel_offsets(ks, dils):
            sl = xp[_window_slice(2, offs, strides, out)]
            flat = 0
            for i in range(nd):
                pos = np.arange(out[i]) * strides[i] + offs[i] - pb[i]
                flat = flat + (pos * mult[i]).reshape((-1,) + (1,) * (nd - 1 - i))
            flat = np.broadcast_to(flat, sl.shape)
            if best is None:
                best, idx = sl.copy(), flat.astype(np.int64)
            else:
                upd = sl > best
                np.copyto(best, sl, where=upd)
                np.copyto(idx, flat, where=upd)
        nc = np.arange(x.shape[0] * x.shape[1], dtype=np.int64).reshape(
            (x.shape[0], x.shape[1]) + (1,) * nd)
        return idx + nc * int(np.prod(in_sp))

    return _LazyOutputs([y, _Deferred(indices)])


def _pool_counts(in_sp, ks, strides, dils, out, pb, pe, include_pad):
    """Per-output element counts of an average window, as a broadcastable
    product of per-axis counts (the valid region is a box)."""
    total = None
    nd = len(ks)
    for i in range(nd):
        pos = (np.arange(out[i]) * strides[i] - pb[i])[:, None] + \
            np.arange(ks[i]) * dils[i]
        lo, hi = (-pb[i], in_sp[i] + pe[i]) if include_pad else (0, in_sp[i])
        cnt = ((pos >= lo) & (pos < hi)).sum(axis=1)
        cnt = cnt.reshape((-1,) + (1,) * (nd - 1 - i))
        total = cnt if total is None else total * cnt
    return total


@kernel("AveragePool")
def k_averagepool(inputs, attrs, opset):
    x = inputs[0]
    xc = _up(x)
    ks, strides, dils, out, pb, pe = _pool_geometry(attrs, x.shape[2:])
    xp = _pool_input(xc, ks, strides, dils, out, pb, 0)
    y = _window_reduce(xp, ks, strides, dils, out, np.add)
    cnt = _pool_counts(x.shape[2:], ks, strides, dils, out, pb, pe,
                       attrs.get("count_include_pad", 0))
    if np.all(cnt == cnt.flat[0]):
        y /= y.dtype.type(cnt.flat[0])
    else:
        y /= cnt.astype(y.dtype)
    return [_as(y, x.dtype)]


@kernel("LpPool")
def k_lppool(inputs, attrs, opset):
    x = inputs[0]
    p = attrs.get("p", 2)
    xc = np.abs(_up(x))
    ks, strides, dils, out, pb, pe = _pool_geometry(attrs, x.shape[2:])
    xp = _pool_input(xc, ks, strides, dils, out, pb, 0)
    y = np.zeros(x.shape[:2] + tuple(out), dtype=xc.dtype)
    for _, offs in _kernel_offsets(ks, dils):
        y += xp[_window_slice(2, offs, strides, out)] ** p
    return [_as(y ** (1.0 / p), x.dtype)]


@kernel("GlobalAveragePool")
def k_global_avgpool(inputs, attrs, opset):
    x = inputs[0]
    return [_as(_up(x).mean(axis=tuple(range(2, x.ndim)), keepdims=True), x.dtype)]


@kernel("GlobalMaxPool")
def k_global_maxpool(inputs, attrs, opset):
    x = inputs[0]
    return [x.max(axis=tuple(range(2, x.ndim)), keepdims=True)]


@kernel("GlobalLpPool")
def k_global_lppool(inputs, attrs, opset):
    x = inputs[0]
    p = attrs.get("p", 2)
    y = (np.abs(_up(x)) ** p).sum(axis=tuple(range(2, x.ndim)), keepdims=True)
    return [_as(y ** (1.0 / p), x.dtype)]


# ============================================================================
# Normalisation
# ============================================================================


def _channel_shape(x: np.ndarray) -> tuple:
    return (1, -1) + (1,) * (x.ndim - 2)


@kernel("BatchNormalization")
def k_batchnorm(inputs, attrs, opset):
    """BatchNormalization; training_mode (opset 14+) uses batch statistics
    and also returns the updated running mean/var."""
    x, scale, bias, mean, var = inputs[:5]
    dt = x.dtype
    eps = attrs.get("epsilon", 1e-5)
    xc = _up(x)
    cdt = xc.dtype
    if opset < 9 and attrs.get("spatial", 1) == 0:
        pshape = (1,) + scale.shape  # per-activation parameters [C, D1, ...]
    else:
        pshape = _channel_shape(x)
    sc, bi = _up(scale).reshape(pshape), _up(bias).reshape(pshape)
    if opset >= 14 and attrs.get("training_mode", 0):
        mom = attrs.get("momentum", 0.9)
        axes = (0,) + tuple(range(2, x.ndim))
        bm = xc.mean(axis=axes)
        bv = xc.var(axis=axes)
        y = (xc - bm.reshape(pshape)) / np.sqrt(bv.reshape(pshape) + eps) * sc + bi
        rm = _up(mean) * mom + bm * (1 - mom)
        rv = _up(var) * mom + bv * (1 - mom)
        return [_as(y, dt), _as(rm, mean.dtype), _as(rv, var.dtype)]
    a = sc / np.sqrt(_up(var).reshape(pshape) + cdt.type(eps))
    shift = bi - _up(mean).reshape(pshape) * a
    y = xc * a.astype(cdt, copy=False)
    y += shift.astype(cdt, copy=False)
    return [_as(y, dt)]


@kernel("InstanceNormalization")
def k_instancenorm(inputs, attrs, opset):
    x, scale, bias = inputs[:3]
    eps = attrs.get("epsilon", 1e-5)
    xc = _up(x)
    axes = tuple(range(2, x.ndim))
    m = xc.mean(axis=axes, keepdims=True)
    d = xc - m
    v = np.mean(d * d, axis=axes, keepdims=True)
    d *= (1.0 / np.sqrt(v + eps)).astype(d.dtype)
    d *= _up(scale).reshape(_channel_shape(x))
    d += _up(bias).reshape(_channel_shape(x))
    return [_as(d, x.dtype)]


@kernel("LayerNormalization")
def k_layernorm(inputs, attrs, opset):
    """LayerNormalization over axes [axis, rank); returns Y, Mean, InvStdDev."""
    x, scale, bias = inputs[0], inputs[1], _get(inputs, 2)
    axis = _axis(attrs.get("axis", -1), x.ndim)
    eps = attrs.get("epsilon", 1e-5)
    xc = x.astype(np.float32) if attrs.get("stash_type", 1) == 1 and \
        x.dtype != np.float64 else x
    axes = tuple(range(axis, x.ndim))
    m = xc.mean(axis=axes, keepdims=True)
    d = xc - m
    v = np.mean(d * d, axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(v + eps)
    y = d * inv * _up(scale)
    if bias is not None:
        y += _up(bias)
    return [_as(y, x.dtype), _as(m, x.dtype), _as(inv, x.dtype)]


@kernel("GroupNormalization")
def k_groupnorm(inputs, attrs, opset):
    """GroupNormalization; scale/bias are per group in opset 18, per channel
    from opset 21."""
    x, scale, bias = inputs[:3]
    G = int(attrs["num_groups"])
    eps = attrs.get("epsilon", 1e-5)
    N, C = x.shape[:2]
    xc = x.astype(np.float32) if x.dtype != np.float64 else x
    xg = xc.reshape(N, G, -1)
    m = xg.mean(axis=2, keepdims=True)
    d = xg - m
    v = np.mean(d * d, axis=2, keepdims=True)
    y = (d / np.sqrt(v + eps)).reshape(x.shape)
    sc, bi = _up(scale), _up(bias)
    if sc.size == G and G != C:
        sc, bi = np.repeat(sc, C // G), np.repeat(bi, C // G)
    y = y * sc.reshape(_channel_shape(x)) + bi.reshape(_channel_shape(x))
    return [_as(y, x.dtype)]


@kernel("LRN")
def k_lrn(inputs, attrs, opset):
    """LRN across channels: window [c - floor((n-1)/2), c + ceil((n-1)/2)]."""
    x = inputs[0]
    size = int(attrs["size"])
    alpha, beta = attrs.get("alpha", 1e-4), attrs.get("beta", 0.75)
    bias = attrs.get("bias", 1.0)
    xc = _up(x)
    sq = xc * xc
    lo = (size - 1) // 2
    hi = size - 1 - lo
    pad = [(0, 0)] * x.ndim
    pad[1] = (lo, hi)
    sqp = np.pad(sq, pad)
    s = np.zeros_like(sq)
    C = x.shape[1]
    for i in range(size):
        s += sqp[:, i:i + C]
    y = xc / (bias + (alpha / size) * s) ** beta
    return [_as(y, x.dtype)]


@kernel("LpNormalization")
def k_lpnorm(inputs, attrs, opset):
    x = inputs[0]
    axis = _axis(attrs.get("axis", -1), x.ndim)
    p = attrs.get("p", 2)
    xc = _up(x)
    if p == 1:
        n = np.abs(xc).sum(axis=axis, keepdims=True)
    elif p == 2:
        n = np.sqrt((xc * xc).sum(axis=axis, keepdims=True))
    else:
        raise NotImplementedError(f"LpNormalization p={p}")
    with np.errstate(all="ignore"):
        y = np.where(n == 0, 0, xc / n)
    return [_as(y, x.dtype)]


@kernel("MeanVarianceNormalization")
def k_mvn(inputs, attrs, opset):
    x = inputs[0]
    axes = tuple(_axes(attrs.get("axes", [0, 2, 3]), x.ndim))
    xc = _up(x)
    m = xc.mean(axis=axes, keepdims=True)
    d = xc - m
    v = np.mean(d * d, axis=axes, keepdims=True)
    return [_as(d / (np.sqrt(v) + 1e-9), x.dtype)]


# ============================================================================
# Softmax family
# ============================================================================


def _softmax_view(x: np.ndarray, attrs, opset):
    """(x viewed so the softmax runs over one axis, that axis).

    Before opset 13 the input is coerced to 2-D at ``axis`` (default 1) and
    the softmax covers everything from ``axis`` on; from 13 it is one axis
    (default -1).
    """
    if opset < 13:
        axis = _axis(attrs.get("axis", 1), x.ndim) if x.ndim else 0
        rows = int(np.prod(x.shape[:axis]))
        return x.reshape(rows, -1), 1
    return x, _axis(attrs.get("axis", -1), x.ndim)


@kernel("Softmax")
def k_softmax(inputs, attrs, opset):
    x = inputs[0]
    v, axis = _softmax_view(_up(x), attrs, opset)
    e = v - v.max(axis=axis, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return [_as(e.reshape(x.shape), x.dtype)]


@kernel("LogSoftmax")
def k_logsoftmax(inputs, attrs, opset):
    x = inputs[0]
    v, axis = _softmax_view(_up(x), attrs, opset)
    d = v - v.max(axis=axis, keepdims=True)
    d -= np.log(np.exp(d).sum(axis=axis, keepdims=True))
    return [_as(d.reshape(x.shape), x.dtype)]


@kernel("Hardmax")
def k_hardmax(inputs, attrs, opset):
    x = inputs[0]
    v, axis = _softmax_view(x, attrs, opset)
    idx = np.expand_dims(np.argmax(v, axis=axis), axis)
    y = np.zeros_like(v)
    np.put_along_axis(y, idx, 1, axis=axis)
    return [y.reshape(x.shape)]


# ============================================================================
# Reductions
# ============================================================================


def _reduce_axes(inputs, attrs, opset, input_since: int, rank: int):
    """Reduction axes as a tuple; ``()`` means "reduce nothing" (the
    noop_with_empty_axes case, where the per-element part still applies)."""
    if opset >= input_since:
        axes = _ints(_get(inputs, 1))
    else:
        axes = _ints(attrs.get("axes"))
    if not axes:
        if attrs.get("noop_with_empty_axes", 0):
            return ()
        return tuple(range(rank))
    return _axes(axes, rank)


def _reduction(op_type: str, fn: Callable, input_since: int = 18) -> None:
    def k(inputs, attrs, opset):
        x = inputs[0]
        axes = _reduce_axes(inputs, attrs, opset, input_since, x.ndim)
        keep = bool(attrs.get("keepdims", 1))
        with np.errstate(all="ignore"):
            y = fn(_up(x), axes, keep)
        return [_as(y, x.dtype)]

    k.__name__ = f"k_{op_type}"
    k.__doc__ = f"ONNX {op_type}; axes attribute before opset {input_since}, input after."
    KERNELS[op_type] = k


def _rmax(x, axes, keep):
    if x.size == 0:
        return np.max(x, axis=axes, keepdims=keep, initial=_lowest(x.dtype))
    return np.max(x, axis=axes, keepdims=keep)


def _rmin(x, axes, keep):
    if x.size == 0:
        return np.min(x, axis=axes, keepdims=keep, initial=_highest(x.dtype))
    return np.min(x, axis=axes, keepdims=keep)


def _rlogsumexp(x, axes, keep):
    m = _rmax(x, axes, True)
    m = np.where(np.isfinite(m), m, 0).astype(x.dtype)
    s = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
    return s if keep else np.squeeze(s, axis=axes)


def _rmean(x, axes, keep):
    if x.dtype.kind in "iu":
        return np.trunc(np.mean(x, axis=axes, keepdims=keep, dtype=np.float64))
    return np.mean(x, axis=axes, keepdims=keep)


_reduction("ReduceSum", lambda x, a, k: np.sum(x, axis=a, keepdims=k), 13)
_reduction("ReduceMean", _rmean)
_reduction("ReduceMax", _rmax)
_reduction("ReduceMin", _rmin)
_reduction("ReduceProd", lambda x, a, k: np.prod(x, axis=a, keepdims=k))
_reduction("ReduceL1", lambda x, a, k: np.sum(np.abs(x), axis=a, keepdims=k))
_reduction("ReduceL2", lambda x, a, k: np.sqrt(np.sum(
    np.square(x.astype(np.float64) if x.dtype.kind in "iu" else x),
    axis=a, keepdims=k)))
_reduction("ReduceSumSquare", lambda x, a, k: np.sum(np.square(x), axis=a, keepdims=k))
_reduction("ReduceLogSum", lambda x, a, k: np.log(np.sum(x, axis=a, keepdims=k)))
_reduction("ReduceLogSumExp", _rlogsumexp)


def _arg_reduce(op_type: str, fn: Callable) -> None:
    def k(inputs, attrs, opset):
        x = inputs[0]
        axis = _axis(attrs.get("axis", 0), x.ndim)
        if attrs.get("select_last_index", 0):
            n = x.shape[axis]
            y = n - 1 - fn(np.flip(x, axis=axis), axis=axis)
        else:
            y = fn(x, axis=axis)
        if attrs.get("keepdims", 1):
            y = np.expand_dims(y, axis)
        return [y.astype(np.int64)]

    k.__name__ = f"k_{op_type}"
    KERNELS[op_type] = k


_arg_reduce("ArgMax", np.argmax)
_arg_reduce("ArgMin", np.argmin)


# ============================================================================
# Shape and layout
# ============================================================================


@kernel("Reshape")
def k_reshape(inputs, attrs, opset):
    """Reshape: 0 copies the input dim (unless allowzero), -1 is inferred."""
    x = inputs[0]
    shape = _ints(attrs.get("shape")) if opset < 5 else _ints(inputs[1])
    if not attrs.get("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return [x.reshape(shape)]


@kernel("Flatten")
def k_flatten(inputs, attrs, opset):
    x = inputs[0]
    axis = attrs.get("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis
    rows = int(np.prod(x.shape[:axis]))
    return [x.reshape(rows, -1) if rows else x.reshape(0, int(np.prod(x.shape[axis:])))]


@kernel("Transpose")
def k_transpose(inputs, attrs, opset):
    x = inputs[0]
    perm = _ints(attrs.get("perm"))
    return [np.transpose(x, perm)]


@kernel("Squeeze")
def k_squeeze(inputs, attrs, opset):
    x = inputs[0]
    axes = _ints(attrs.get("axes")) if opset < 13 else _ints(_get(inputs, 1))
    if axes is None:
        return [np.squeeze(x)]
    return [np.squeeze(x, axis=_axes(axes, x.ndim))]


@kernel("Unsqueeze")
def k_unsqueeze(inputs, attrs, opset):
    x = inputs[0]
    axes = _ints(attrs.get("axes")) if opset < 13 else _ints(inputs[1])
    out_rank = x.ndim + len(axes)
    return [np.expand_dims(x, axis=_axes(axes, out_rank))]


@kernel("Concat")
def k_concat(inputs, attrs, opset):
    xs = [t for t in inputs if t is not None]
    axis = _axis(attrs.get("axis", 0 if opset < 4 else None), xs[0].ndim)
    return [np.concatenate(xs, axis=axis)]


@kernel("Split")
def k_split(inputs, attrs, opset):
    """Split: sizes from the 'split' attribute (<13) or input (13+), or
    num_outputs (18+); otherwise equal parts, one per node output."""
    x = inputs[0]
    axis = _axis(attrs.get("axis", 0), x.ndim)
    dim = x.shape[axis]
    split = _ints(attrs.get("split")) if opset < 13 else _ints(_get(inputs, 1))
    if not split:
        n = attrs.get("num_outputs") if opset >= 18 else None
        if n is not None:
            chunk = -(-dim // n)
            split = [chunk] * (n - 1) + [dim - chunk * (n - 1)]
        else:
            n = attrs.get(NUM_OUTPUTS)
            if n is None:
                raise NotImplementedError(
                    "Split without 'split' sizes needs the node's output count: "
                    f"pass attrs[{NUM_OUTPUTS!r}]")
            if dim % n:
                raise ValueError(f"Split: dim {dim} not divisible into {n} parts")
            split = [dim // n] * n
    bounds = np.cumsum(split)[:-1]
    return list(np.split(x, bounds, axis=axis))


@kernel("Slice")
def k_slice(inputs, attrs, opset):
    """Slice with ONNX clamping (start/end clamp differs for negative steps)."""
    x = inputs[0]
    if opset < 10:
        starts, ends = _ints(attrs["starts"]), _ints(attrs["ends"])
        axes, steps = _ints(attrs.get("axes")), None
    else:
        starts, ends = _ints(inputs[1]), _ints(inputs[2])
        axes, steps = _ints(_get(inputs, 3)), _ints(_get(inputs, 4))
    axes = axes or list(range(len(starts)))
    steps = steps or [1] * len(starts)
    idx = [slice(None)] * x.ndim
    for st, en, ax, sp in zip(starts, ends, axes, steps):
        ax = _axis(ax, x.ndim)
        d = x.shape[ax]
        st = st + d if st < 0 else st
        en = en + d if en < 0 else en
        if sp > 0:
            st, en = min(max(st, 0), d), min(max(en, 0), d)
        else:
            st, en = min(max(st, 0), d - 1), min(max(en, -1), d - 1)
        idx[ax] = slice(st, en if en >= 0 else None, sp)
    return [x[tuple(idx)]]


@kernel("Pad")
def k_pad(inputs, attrs, opset):
    """Pad: constant/reflect/edge/wrap; negative pads crop.  Pads and value
    are attributes before opset 11, inputs after (axes input from 18)."""
    x = inputs[0]
    mode = attrs.get("mode", "constant")
    if opset < 11:
        pads = _ints(attrs.get("pads", attrs.get("paddings")))
        value = attrs.get("value", 0.0)
        axes = None
    else:
        pads = _ints(inputs[1])
        cv = _get(inputs, 2)
        value = 0 if cv is None or cv.size == 0 else _scalar(cv)
        axes = _ints(_get(inputs, 3))
    rank = x.ndim
    axes = list(range(rank)) if axes is None else [_axis(a, rank) for a in axes]
    na = len(axes)
    begin, end = [0] * rank, [0] * rank
    for i, a in enumerate(axes):
        begin[a], end[a] = pads[i], pads[na + i]
    if mode == "constant":
        return [_pad_constant(x, begin, end, np.asarray(value).astype(x.dtype)[()])]
    if mode not in ("reflect", "edge", "wrap"):
        raise NotImplementedError(f"Pad mode={mode!r}")
    crop = tuple(slice(max(0, -b), x.shape[i] - max(0, -e))
                 for i, (b, e) in enumerate(zip(begin, end)))
    x = x[crop]
    widths = [(max(0, b), max(0, e)) for b, e in zip(begin, end)]
    return [np.pad(x, widths, mode=mode)]


@kernel("Expand")
def k_expand(inputs, attrs, opset):
    x = inputs[0]
    shape = np.broadcast_shapes(x.shape, tuple(_ints(inputs[1])))
    return [np.broadcast_to(x, shape).copy()]


@kernel("Tile")
def k_tile(inputs, attrs, opset):
    return [np.tile(inputs[0], _ints(inputs[1]))]


@kernel("Shape")
def k_shape(inputs, attrs, opset):
    shape = inputs[0].shape
    start = attrs.get("start", 0)
    end = attrs.get("end")
    return [np.array(shape[start:end], dtype=np.int64)]


@kernel("Size")
def k_size(inputs, attrs, opset):
    return [np.array(inputs[0].size, dtype=np.int64)]


@kernel("Identity")
def k_identity(inputs, attrs, opset):
    return [inputs[0]]


@kernel("SpaceToDepth")
def k_space_to_depth(inputs, attrs, opset):
    x = inputs[0]
    b = int(attrs["blocksize"])
    N, C, H, W = x.shape
    y = x.reshape(N, C, H // b, b, W // b, b)
    if attrs.get("mode", "DCR") == "DCR":
        y = y.transpose(0, 3, 5, 1, 2, 4)
    else:
        y = y.transpose(0, 1, 3, 5, 2, 4)
    return [y.reshape(N, C * b * b, H // b, W // b)]


@kernel("DepthToSpace")
def k_depth_to_space(inputs, attrs, opset):
    x = inputs[0]
    b = int(attrs["blocksize"])
    N, C, H, W = x.shape
    c = C // (b * b)
    if attrs.get("mode", "DCR") == "DCR":
        y = x.reshape(N, b, b, c, H, W).transpose(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(N, c, b, b, H, W).transpose(0, 1, 4, 2, 5, 3)
    return [y.reshape(N, c, H * b, W * b)]


@kernel("Trilu")
def k_trilu(inputs, attrs, opset):
    x = inputs[0]
    k = _get(inputs, 1)
    k = 0 if k is None else int(_scalar(k))
    return [np.triu(x, k) if attrs.get("upper", 1) else np.tril(x, k)]


@kernel("EyeLike")
def k_eyelike(inputs, attrs, opset):
    x = inputs[0]
    dt = onnx_dtype_to_numpy(attrs["dtype"]) if "dtype" in attrs else x.dtype
    return [np.eye(x.shape[0], x.shape[1], k=attrs.get("k", 0), dtype=dt)]


# ============================================================================
# Indexing, sorting, generation
# ============================================================================


def _norm_indices(idx: np.ndarray, dim: int) -> np.ndarray:
    idx = idx.astype(np.int64, copy=False)
    return np.where(idx < 0, idx + dim, idx)


@kernel("Gather")
def k_gather(inputs, attrs, opset):
    x, idx = inputs[0], inputs[1]
    axis = _axis(attrs.get("axis", 0), x.ndim)
    return [np.take(x, _norm_indices(idx, x.shape[axis]), axis=axis)]


@kernel("GatherElements")
def k_gather_elements(inputs, attrs, opset):
    x, idx = inputs[0], inputs[1]
    axis = _axis(attrs.get("axis", 0), x.ndim)
    return [np.take_along_axis(x, _norm_indices(idx, x.shape[axis]), axis=axis)]


@kernel("GatherND")
def k_gather_nd(inputs, attrs, opset):
    x, idx = inputs[0], inputs[1].astype(np.int64)
    b = attrs.get("batch_dims", 0)
    bshape = x.shape[:b]
    nb = int(np.prod(bshape))
    k = idx.shape[-1]
    xr = x.reshape((nb,) + x.shape[b:])
    ir = idx.reshape((nb, -1, k))
    ir = np.where(ir < 0, ir + np.array(x.shape[b:b + k]), ir)
    bi = np.arange(nb).reshape(nb, 1)
    y = xr[(bi,) + tuple(ir[..., j] for j in range(k))]
    return [y.reshape(idx.shape[:-1] + x.shape[b + k:])]


_SCATTER_UFUNC = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


@kernel("ScatterND")
def k_scatter_nd(inputs, attrs, opset):
    x, idx, upd = inputs[0], inputs[1].astype(np.int64), inputs[2]
    y = x.copy()
    k = idx.shape[-1]
    loc = tuple(np.moveaxis(idx, -1, 0).reshape(k, -1))
    vals = upd.reshape((-1,) + x.shape[k:])
    red = attrs.get("reduction", "none")
    if red == "none":
        y[loc] = vals
    elif red in _SCATTER_UFUNC:
        _SCATTER_UFUNC[red].at(y, loc, vals)
    else:
        raise NotImplementedError(f"ScatterND reduction={red!r}")
    return [y]


@kernel("ScatterElements", "Scatter")
def k_scatter_elements(inputs, attrs, opset):
    x, idx, upd = inputs[0], inputs[1], inputs[2]
    axis = _axis(attrs.get("axis", 0), x.ndim)
    idx = _norm_indices(idx, x.shape[axis])
    y = x.copy()
    red = attrs.get("reduction", "none")
    loc = list(np.indices(idx.shape, sparse=True))
    loc[axis] = idx
    loc = tuple(loc)
    if red == "none":
        y[loc] = upd
    elif red in _SCATTER_UFUNC:
        _SCATTER_UFUNC[red].at(y, loc, upd)
    else:
        raise NotImplementedError(f"ScatterElements reduction={red!r}")
    return [y]


@kernel("Compress")
def k_compress(inputs, attrs, opset):
    x, cond = inputs[0], inputs[1].astype(bool)
    axis = attrs.get("axis")
    if axis is None:
        return [np.compress(cond, x.reshape(-1))]
    return [np.compress(cond, x, axis=_axis(axis, x.ndim))]


@kernel("OneHot")
def k_onehot(inputs, attrs, opset):
    idx, depth, values = inputs[0], inputs[1], inputs[2]
    d = int(_scalar(depth))
    rank = idx.ndim + 1
    axis = _axis(attrs.get("axis", -1), rank)
    i = idx.astype(np.int64)
    i = np.where(i < 0, i + d, i)
    classes = np.arange(d).reshape((-1,) + (1,) * (rank - 1 - axis))
    hot = np.expand_dims(i, axis) == classes
    return [np.where(hot, values[1], values[0]).astype(values.dtype)]


@kernel("NonZero")
def k_nonzero(inputs, attrs, opset):
    x = inputs[0]
    return [np.array(np.nonzero(np.atleast_1d(x) if x.ndim == 0 else x),
                     dtype=np.int64).reshape(x.ndim, -1)]


@kernel("TopK")
def k_topk(inputs, attrs, opset):
    """TopK; ties keep the lower index first (stable), for largest too."""
    x = inputs[0]
    k = int(attrs["k"]) if opset < 10 else int(_scalar(inputs[1]))
    axis = _axis(attrs.get("axis", -1), x.ndim)
    n = x.shape[axis]
    if attrs.get("largest", 1):
        # Stable ascending sort of the reversed axis, read backwards, orders by
        # value descending with equal values by ascending original index.
        order = np.argsort(np.flip(x, axis=axis), axis=axis, kind="stable")
        order = (n - 1) - np.flip(order, axis=axis)
    else:
        order = np.argsort(x, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    return [np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64)]


@kernel("CumSum")
def k_cumsum(inputs, attrs, opset):
    x = inputs[0]
    axis = _axis(_scalar(inputs[1]), x.ndim)
    rev = attrs.get("reverse", 0)
    v = np.flip(x, axis) if rev else x
    c = np.cumsum(v, axis=axis, dtype=x.dtype)
    if attrs.get("exclusive", 0):
        c = np.roll(c, 1, axis=axis)
        c[(slice(None),) * axis + (0,)] = 0
    return [np.flip(c, axis) if rev else c]


@kernel("CumProd")
def k_cumprod(inputs, attrs, opset):
    x = inputs[0]
    axis = _axis(_scalar(inputs[1]), x.ndim)
    rev = attrs.get("reverse", 0)
    v = np.flip(x, axis) if rev else x
    c = np.cumprod(v, axis=axis, dtype=x.dtype)
    if attrs.get("exclusive", 0):
        c = np.roll(c, 1, axis=axis)
        c[(slice(None),) * axis + (0,)] = 1
    return [np.flip(c, axis) if rev else c]


@kernel("Range")
def k_range(inputs, attrs, opset):
    start, limit, delta = (_scalar(t) for t in inputs[:3])
    dt = np.asarray(inputs[0]).dtype
    n = max(int(math.ceil((float(limit) - float(start)) / float(delta))), 0)
    if dt.kind in "iu":
        return [(start + np.arange(n, dtype=dt) * delta).astype(dt)]
    return [(start + np.arange(n, dtype=np.float64) * delta).astype(dt)]


@kernel("ReverseSequence")
def k_reverse_sequence(inputs, attrs, opset):
    x, lens = inputs[0], inputs[1]
    baxis, taxis = attrs.get("batch_axis", 1), attrs.get("time_axis", 0)
    y = x.copy()
    T = x.shape[taxis]
    t = np.arange(T)
    for bi, L in enumerate(lens.tolist()):  # loop over sequences, not elements
        src = np.where(t < L, L - 1 - t, t)
        sel = [slice(None)] * x.ndim
        sel[baxis] = bi
        xb = x[tuple(sel)]
        ta = taxis if taxis < baxis else taxis - 1
        y[tuple(sel)] = np.take(xb, src, axis=ta)
    return [y]


# ============================================================================
# Resize / Upsample
# ============================================================================


def _resize_coords(ctm, out_len, in_len, scale, roi_lo, roi_hi, length):
    """Source coordinate of each output index along one axis (float64).

    ``length`` is the spec's ``length_resized``: the possibly fractional
    ``scale * in_len`` (== out_len when sizes were given).  The ONNX test
    data uses it, not the integer out_len, in align_corners & co.
    """
    y = np.arange(out_len, dtype=np.float64)
    if ctm == "half_pixel":
        return (y + 0.5) / scale - 0.5
    if ctm == "asymmetric":
        return y / scale
    if ctm == "pytorch_half_pixel":
        return (y + 0.5) / scale - 0.5 if length > 1 else np.zeros(out_len)
    if ctm == "align_corners":
        if length == 1:
            return np.zeros(out_len)
        return y * (in_len - 1) / (length - 1)
    if ctm == "half_pixel_symmetric":
        adj = out_len / length
        offset = in_len / 2 * (1 - adj)
        return offset + (y + 0.5) / scale - 0.5
    if ctm == "tf_half_pixel_for_nn":
        return (y + 0.5) / scale
    if ctm == "tf_crop_and_resize":
        if length > 1:
            x = y * (roi_hi - roi_lo) * (in_len - 1) / (length - 1)
        else:
            x = np.full(out_len, (roi_hi - roi_lo) * (in_len - 1) / 2)
        return x + roi_lo * (in_len - 1)
    raise NotImplementedError(f"Resize coordinate_transformation_mode={ctm!r}")


def _nearest_index(x, mode, scale):
    if mode == "round_prefer_floor":
        return np.ceil(x - 0.5)
    if mode == "round_prefer_ceil":
        return np.floor(x + 0.5)
    if mode == "floor":
        return np.floor(x)
    if mode == "ceil":
        return np.ceil(x)
    if mode == "simple":  # Resize-10 / Upsample, as onnxruntime implements it
        return np.ceil(x) if scale < 1 else np.floor(x)
    raise NotImplementedError(f"Resize nearest_mode={mode!r}")


def _cubic_kernel(d, a):
    d = np.abs(d)
    d2, d3 = d * d, d * d * d
    near = (a + 2) * d3 - (a + 3) * d2 + 1
    far = a * d3 - 5 * a * d2 + 8 * a * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def _interp_taps(x, in_len, scale, mode, cubic_a, antialias, exclude_outside):
    """(indices [out, n], weights [out, n]) of linear/cubic interpolation.

    Taps are the n input positions nearest x; weights are the kernel at the
    (scaled, when antialiasing a downscale) distance, edge-clamped indices.
    """
    radius = 1 if mode == "linear" else 2
    fs = min(scale, 1.0) if antialias else 1.0
    start = int(math.floor(-radius / fs)) + 1
    n = 2 - 2 * start
    base = np.floor(x).astype(np.int64)
    j = base[:, None] + (start + np.arange(n))[None, :]
    d = (j - x[:, None]) * fs
    if mode == "linear":
        w = np.clip(1 - np.abs(d), 0, 1)
    else:
        w = _cubic_kernel(d, cubic_a)
    if antialias:
        w = w / w.sum(axis=1, keepdims=True)
    if exclude_outside:
        w = np.where((j < 0) | (j >= in_len), 0.0, w)
        s = w.sum(axis=1, keepdims=True)
        w = w / np.where(s == 0, 1.0, s)
    return np.clip(j, 0, in_len - 1), w


def _resize(x, out_sizes, scales, mode, ctm, nearest_mode, cubic_a=-0.75,
            exclude_outside=False, extrapolation=0.0, roi=None, antialias=False,
            lengths=None):
    """Separable N-d resize of ``x`` to ``out_sizes`` (one pass per axis).

    ``lengths``: per-axis fractional output lengths (default scale * in).
    """
    if lengths is None:
        lengths = [s * d for s, d in zip(scales, x.shape)]
    dt = x.dtype
    rank = x.ndim
    todo = []
    for ax in range(rank):
        lo, hi = (roi[ax], roi[rank + ax]) if roi is not None else (0.0, 1.0)
        trivial = out_sizes[ax] == x.shape[ax] and scales[ax] == 1.0 and \
            (ctm != "tf_crop_and_resize" or (lo == 0.0 and hi == 1.0))
        if not trivial:
            todo.append((ax, float(lo), float(hi)))
    if not todo:
        return x.copy()
    if mode == "nearest":
        index = [slice(None)] * rank
        masks = []
        for ax, lo, hi in todo:
            n_in = x.shape[ax]
            c = _resize_coords(ctm, out_sizes[ax], n_in, scales[ax], lo, hi,
                               lengths[ax])
            idx = np.clip(_nearest_index(c, nearest_mode, scales[ax]), 0, n_in - 1)
            index[ax] = idx.astype(np.intp)
            if ctm == "tf_crop_and_resize":
                masks.append((ax, (c < 0) | (c > n_in - 1)))
        y = x
        advanced = [ax for ax, _, _ in todo]
        if advanced == list(range(advanced[0], advanced[-1] + 1)):
            # Adjacent axes: one gather with broadcast (outer-product) indices.
            sel = list(index)
            for i, ax in enumerate(advanced):
                sel[ax] = index[ax].reshape((-1,) + (1,) * (len(advanced) - 1 - i))
            y = x[tuple(sel)]
        else:
            for ax in advanced:
                y = np.take(y, index[ax], axis=ax)
        for ax, m in masks:
            if m.any():
                y = np.where(m.reshape((-1,) + (1,) * (rank - 1 - ax)), extrapolation, y)
        return _as(y, dt) if y.dtype != dt else y
    if mode not in ("linear", "cubic"):
        raise NotImplementedError(f"Resize mode={mode!r}")
    cdt = x.dtype if x.dtype in (np.float32, np.float64) else (
        np.float32 if x.dtype in _LOWP else np.float64)
    y = x.astype(cdt, copy=False)
    for ax, lo, hi in todo:
        n_in = y.shape[ax]
        c = _resize_coords(ctm, out_sizes[ax], n_in, scales[ax], lo, hi,
                               lengths[ax])
        j, w = _interp_taps(c, n_in, float(scales[ax]), mode, cubic_a,
                            antialias, exclude_outside)
        wshape = (-1,) + (1,) * (rank - 1 - ax)
        acc = None
        for t in range(j.shape[1]):
            term = np.take(y, j[:, t], axis=ax)
            term *= w[:, t].astype(cdt).reshape(wshape)
            if acc is None:
                acc = term
            else:
                acc += term
        if ctm == "tf_crop_and_resize":
            m = (c < 0) | (c > n_in - 1)
            if m.any():
                acc[(slice(None),) * ax + (m,)] = extrapolation
        y = acc
    return _saturate(y, dt) if dt.kind in "iub" else _as(y, dt)


def _resize_sizes_scales(x, scales, sizes, axes, policy):
    """Full-rank (out_sizes, scales) from the Resize inputs."""
    rank = x.ndim
    axes = list(range(rank)) if axes is None else [_axis(a, rank) for a in axes]
    full_scales = [1.0] * rank
    out = list(x.shape)
    lengths = [float(d) for d in x.shape]
    if sizes is not None:
        sz = _ints(sizes)
        for a, s in zip(axes, sz):
            full_scales[a] = s / x.shape[a]
            out[a] = s
        if policy != "stretch":
            pick = min if policy == "not_larger" else max
            if policy not in ("not_larger", "not_smaller"):
                raise NotImplementedError(f"keep_aspect_ratio_policy={policy!r}")
            s = pick(full_scales[a] for a in axes)
            for a in axes:
                full_scales[a] = s
                out[a] = int(s * x.shape[a] + 0.5)
        for a in axes:
            lengths[a] = float(out[a]) if policy == "stretch" else \
                full_scales[a] * x.shape[a]
    else:
        sc = [float(v) for v in np.asarray(scales).reshape(-1)]
        for a, s in zip(axes, sc):
            full_scales[a] = s
            out[a] = int(math.floor(s * x.shape[a]))
            lengths[a] = s * x.shape[a]
    return out, full_scales, axes, lengths


@kernel("Resize")
def k_resize(inputs, attrs, opset):
    """Resize (opset 10-19+): nearest/linear/cubic with every coordinate
    transformation and nearest rounding mode, antialias, axes, roi."""
    x = inputs[0]
    mode = attrs.get("mode", "nearest")
    if opset < 11:
        scales, sizes, roi = inputs[1], None, None
        ctm, nearest = "asymmetric", "simple"
    else:
        roi, scales, sizes = _get(inputs, 1), _get(inputs, 2), _get(inputs, 3)
        ctm = attrs.get("coordinate_transformation_mode", "half_pixel")
        nearest = attrs.get("nearest_mode", "round_prefer_floor")
    if scales is not None and scales.size == 0:
        scales = None
    if sizes is not None and sizes.size == 0:
        sizes = None
    if roi is not None and roi.size == 0:
        roi = None
    axes = _ints(attrs.get("axes"))
    out, sc, axes, lengths = _resize_sizes_scales(
        x, scales, sizes, axes, attrs.get("keep_aspect_ratio_policy", "stretch"))
    full_roi = None
    if roi is not None and ctm == "tf_crop_and_resize":
        r = [float(v) for v in roi.reshape(-1)]
        full_roi = [0.0] * x.ndim + [1.0] * x.ndim
        na = len(axes)
        for i, a in enumerate(axes):
            full_roi[a], full_roi[x.ndim + a] = r[i], r[na + i]
    y = _resize(x, out, sc, mode, ctm, nearest,
                cubic_a=attrs.get("cubic_coeff_a", -0.75),
                exclude_outside=bool(attrs.get("exclude_outside", 0)),
                extrapolation=attrs.get("extrapolation_value", 0.0),
                roi=full_roi, antialias=bool(attrs.get("antialias", 0)),
                lengths=lengths)
    return [y]


@kernel("Upsample")
def k_upsample(inputs, attrs, opset):
    """Upsample (deprecated): asymmetric coordinates, nearest or linear."""
    x = inputs[0]
    mode = attrs.get("mode", "nearest")
    if opset < 7:
        sc = [1.0, 1.0, attrs.get("height_scale", 1.0), attrs.get("width_scale", 1.0)]
        mode = "linear" if mode == "bilinear" else mode
    elif opset < 9:
        sc = [float(v) for v in attrs["scales"]]
    else:
        sc = [float(v) for v in inputs[1].reshape(-1)]
    out = [int(math.floor(s * d)) for s, d in zip(sc, x.shape)]
    return [_resize(x, out, sc, mode, "asymmetric", "simple")]


# ============================================================================
# Constants and casts
# ============================================================================


@kernel("Constant")
def k_constant(inputs, attrs, opset):
    if "value" in attrs:
        return [np.asarray(attrs["value"])]
    if "value_float" in attrs:
        return [np.array(attrs["value_float"], dtype=np.float32)]
    if "value_floats" in attrs:
        return [np.array(attrs["value_floats"], dtype=np.float32)]
    if "value_int" in attrs:
        return [np.array(attrs["value_int"], dtype=np.int64)]
    if "value_ints" in attrs:
        return [np.array(attrs["value_ints"], dtype=np.int64)]
    if "value_string" in attrs:
        return [np.array(attrs["value_string"], dtype=object)]
    if "value_strings" in attrs:
        return [np.array(attrs["value_strings"], dtype=object)]
    raise NotImplementedError(f"Constant with attributes {sorted(attrs)}")


@kernel("ConstantOfShape")
def k_constant_of_shape(inputs, attrs, opset):
    shape = _ints(inputs[0])
    v = attrs.get("value")
    if v is None:
        return [np.zeros(shape, dtype=np.float32)]
    v = np.asarray(v)
    return [np.full(shape, v.reshape(-1)[0], dtype=v.dtype)]


def _to_e8m0(x: np.ndarray, saturate: bool, round_mode: str) -> np.ndarray:
    """float -> float8e8m0 (a bare power-of-two exponent) with ONNX rounding."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    e = ((bits >> 23) & 0xFF).astype(np.uint16)
    special = e == 0xFF
    if round_mode == "up":
        up = (bits & 0x7FFFFF) != 0
    elif round_mode == "nearest":
        g, r, st = (bits & 0x400000) != 0, (bits & 0x200000) != 0, (bits & 0x1FFFFF) != 0
        up = g & (r | st | (e > 0))
    elif round_mode == "down":
        up = np.zeros(bits.shape, np.bool_)
    else:
        raise NotImplementedError(f"Cast round_mode '{round_mode}'")
    up &= ~special
    if saturate:
        up &= e != 0xFE
    out = np.where(special, 0xFF, e + up).astype(np.uint8)
    return out.view(_mld.float8_e8m0fnu)


def _cast(x: np.ndarray, dt: np.dtype, saturate: bool = True, round_mode: str = "up") -> np.ndarray:
    if x.dtype == object or dt == object:
        raise NotImplementedError("Cast from/to STRING is not supported")
    if dt.kind == "b":
        return x != 0
    if dt in _SMALL_FLOATS or x.dtype in _SMALL_FLOATS or dt in _SMALL_INTS or x.dtype in _SMALL_INTS:
        if x.dtype == dt:
            return x.copy()
        if x.dtype.kind == "b":
            x = x.astype(np.uint8)
        if dt == np.dtype(_mld.float8_e8m0fnu):
            return _to_e8m0(x, saturate, round_mode)
        if dt in _SMALL_FLOATS and saturate and dt != np.dtype(_mld.float4_e2m1fn):
            fi = _mld.finfo(dt)
            f = np.clip(x.astype(np.float32), np.float32(fi.min), np.float32(fi.max))
            return f.astype(dt)
        if x.dtype in _SMALL_FLOATS:
            x = x.astype(np.float32)  # exact: every small-float value is a float32
        return x.astype(dt)
    with np.errstate(all="ignore"):
        if x.dtype in _LOWP and dt.kind in "iu":
            return x.astype(np.float32).astype(dt)
        if dt in _LOWP and x.dtype.kind in "iub" and dt != np.float16:
            return x.astype(np.float32).astype(dt)
        return x.astype(dt)


@kernel("Cast")
def k_cast(inputs, attrs, opset):
    x = inputs[0]
    return [_cast(x, onnx_dtype_to_numpy(attrs["to"]), bool(attrs.get("saturate", 1)),
                  attrs.get("round_mode", "up"))]


@kernel("CastLike")
def k_castlike(inputs, attrs, opset):
    return [_cast(inputs[0], inputs[1].dtype, bool(attrs.get("saturate", 1)),
                  attrs.get("round_mode", "up"))]


# ============================================================================
# Quantisation
# ============================================================================


def _quant_param(p: np.ndarray, shape, axis: int, block: int) -> np.ndarray:
    """Scale/zero-point made broadcastable to x: scalar, per-axis (1-D along
    ``axis``) or blocked (x's shape with ``axis`` divided into blocks)."""
    if p.ndim == 0 or p.size == 1 and not block:
        return p.reshape(())
    if block:
        p = np.repeat(p, block, axis=axis)
        return p[(slice(None),) * axis + (slice(0, shape[axis]),)]
    return p.reshape((-1,) + (1,) * (len(shape) - 1 - axis))


def _quant_axis(attrs, x, scale) -> tuple[int, int]:
    # axis only matters (and only has to be valid) for non-scalar scales.
    block = int(attrs.get("block_size", 0))
    if scale.size <= 1 and not block:
        return 0, 0
    return _axis(attrs.get("axis", 1), x.ndim), block


_QUANT_RANGES = {
    np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127),
    np.dtype(np.uint16): (0, 65535), np.dtype(np.int16): (-32768, 32767),
    np.dtype(np.int32): (-2 ** 31, 2 ** 31 - 1),
}


@kernel("QuantizeLinear")
def k_quantize_linear(inputs, attrs, opset):
    """y = saturate(round_half_even(x / scale) + zero_point)."""
    x, scale, zp = inputs[0], inputs[1], _get(inputs, 2)
    axis, block = _quant_axis(attrs, x, scale)
    if zp is not None:
        qdt = zp.dtype
    elif "output_dtype" in attrs and attrs["output_dtype"]:
        qdt = onnx_dtype_to_numpy(attrs["output_dtype"])
    else:
        qdt = np.dtype(np.uint8)
    if qdt not in _QUANT_RANGES and qdt not in _SMALL_INTS and qdt not in _SMALL_FLOATS:
        raise NotImplementedError(f"QuantizeLinear to {qdt}")
    cdt = np.float64 if x.dtype == np.float64 else np.float32
    s = _quant_param(scale, x.shape, axis, block).astype(cdt)
    if qdt in _SMALL_FLOATS:
        # float8: zero_point must be 0 and is ignored; float4 adds it
        y = _up(x).astype(cdt, copy=False) / s
        if zp is not None and qdt == np.dtype(_mld.float4_e2m1fn):
            y = y + _quant_param(zp, x.shape, axis, block).astype(cdt)
        return [_cast(y, qdt, bool(attrs.get("saturate", 1)))]
    q = np.rint(_up(x).astype(cdt, copy=False) / s)
    if zp is not None:
        q += _quant_param(zp, x.shape, axis, block).astype(cdt)
    lo, hi = _QUANT_RANGES[qdt] if qdt in _QUANT_RANGES else (_mld.iinfo(qdt).min, _mld.iinfo(qdt).max)
    return [np.clip(q, lo, hi).astype(qdt)]


@kernel("DequantizeLinear")
def k_dequantize_linear(inputs, attrs, opset):
    """y = (x - zero_point) * scale, in the scale's type (or output_dtype)."""
    x, scale, zp = inputs[0], inputs[1], _get(inputs, 2)
    if x.dtype not in _QUANT_RANGES and x.dtype not in _SMALL_INTS and x.dtype not in _SMALL_FLOATS:
        raise NotImplementedError(f"DequantizeLinear from {x.dtype}")
    axis, block = _quant_axis(attrs, x, scale)
    odt = onnx_dtype_to_numpy(attrs["output_dtype"]) if attrs.get("output_dtype") \
        else scale.dtype
    cdt = np.float64 if scale.dtype == np.float64 else np.float32
    y = x.astype(cdt)
    if zp is not None:
        y -= _quant_param(zp, x.shape, axis, block).astype(cdt)
    y *= _quant_param(scale, x.shape, axis, block).astype(cdt)
    return [_as(y, np.dtype(odt))]


@kernel("DynamicQuantizeLinear")
def k_dynamic_quantize_linear(inputs, attrs, opset):
    x = inputs[0].astype(np.float32)
    lo = min(0.0, float(x.min())) if x.size else 0.0
    hi = max(0.0, float(x.max())) if x.size else 0.0
    scale = np.float32((hi - lo) / 255.0)
    zp = np.clip(np.rint(-lo / scale), 0, 255) if scale else np.float32(0)
    if scale:
        q = np.clip(np.rint(x / scale) + zp, 0, 255).astype(np.uint8)
    else:
        q = np.zeros(x.shape, dtype=np.uint8)
    return [q, np.array(scale, dtype=np.float32), np.array(zp, dtype=np.uint8)]


def _zp_shift(x: np.ndarray, zp, axis_shape=None) -> np.ndarray:
    y = x.astype(np.int32)
    if zp is not None:
        z = zp.astype(np.int32)
        if axis_shape is not None and z.size > 1:
            z = z.reshape(axis_shape)
        y -= z
    return y


@kernel("MatMulInteger")
def k_matmul_integer(inputs, attrs, opset):
    a, b = inputs[0], inputs[1]
    azp, bzp = _get(inputs, 2), _get(inputs, 3)
    ai = _zp_shift(a, azp, (-1, 1) if azp is not None and azp.ndim == 1 else None)
    bi = _zp_shift(b, bzp)
    # float64 GEMM is exact for int8 products summed over K < 2**37.
    y = np.matmul(ai.astype(np.float64), bi.astype(np.float64))
    return [y.astype(np.int32)]


@kernel("ConvInteger")
def k_conv_integer(inputs, attrs, opset):
    x, w = inputs[0], inputs[1]
    xzp, wzp = _get(inputs, 2), _get(inputs, 3)
    xi = _zp_shift(x, xzp).astype(np.float64)
    wi = _zp_shift(w, wzp, (-1,) + (1,) * (w.ndim - 1)).astype(np.float64)
    strides, dils, pb, pe = _conv_geometry(attrs, x, w)
    y = _conv(xi, wi, None, strides, dils, pb, pe, int(attrs.get("group", 1)))
    return [y.astype(np.int32)]


def _requantize(acc: np.ndarray, mult, yzp) -> np.ndarray:
    q = np.rint(acc * mult)
    if yzp is not None:
        q += yzp.astype(np.float64)
        dt = yzp.dtype
    else:
        dt = np.dtype(np.uint8)
    lo, hi = _QUANT_RANGES[dt]
    return np.clip(q, lo, hi).astype(dt)


@kernel("QLinearMatMul")
def k_qlinear_matmul(inputs, attrs, opset):
    a, a_s, a_zp, b, b_s, b_zp, y_s, y_zp = inputs[:8]
    af = (a.astype(np.float64) - a_zp.astype(np.float64).reshape(
        (-1, 1) if a_zp.ndim == 1 and a_zp.size > 1 else ())) * \
        a_s.astype(np.float64).reshape((-1, 1) if a_s.size > 1 else ())
    bf = (b.astype(np.float64) - b_zp.astype(np.float64)) * b_s.astype(np.float64)
    y = np.matmul(af, bf) / y_s.astype(np.float64)
    return [_requantize(y, 1.0, y_zp)]


@kernel("QLinearConv")
def k_qlinear_conv(inputs, attrs, opset):
    x, x_s, x_zp, w, w_s, w_zp, y_s, y_zp = inputs[:8]
    b = _get(inputs, 8)
    cshape = (-1,) + (1,) * (w.ndim - 1)
    xf = (x.astype(np.float64) - x_zp.astype(np.float64)) * x_s.astype(np.float64)
    wf = (w.astype(np.float64) - w_zp.astype(np.float64).reshape(
        cshape if w_zp.size > 1 else ())) * w_s.astype(np.float64).reshape(
        cshape if w_s.size > 1 else ())
    bias = None
    if b is not None:
        bias = b.astype(np.float64) * (float(_scalar(x_s)) * w_s.astype(np.float64))
    strides, dils, pb, pe = _conv_geometry(attrs, x, w)
    y = _conv(xf, wf, bias, strides, dils, pb, pe, int(attrs.get("group", 1)))
    return [_requantize(y / float(_scalar(y_s)), 1.0, y_zp)]


# ============================================================================
# Miscellaneous
# ============================================================================


@kernel("Dropout")
def k_dropout(inputs, attrs, opset):
    """Dropout: identity at inference (and for ratio 0); the mask output is
    all-true (bool from opset 10, x's type before)."""
    x = inputs[0]
    if opset < 12:
        ratio = attrs.get("ratio", 0.5)
        training = opset < 7 and not attrs.get("is_test", 0)
        training = False  # inference graphs; is_test=0 only mattered to trainers
    else:
        r = _get(inputs, 1)
        t = _get(inputs, 2)
        ratio = 0.5 if r is None else float(_scalar(r))
        training = False if t is None else bool(_scalar(t))
    mask_dt = np.bool_ if opset >= 10 else x.dtype
    if not training or ratio == 0:
        return _LazyOutputs([x, _Deferred(lambda: np.ones(x.shape, dtype=mask_dt))])
    rng = np.random.default_rng(attrs.get("seed"))
    mask = rng.uniform(0.0, 1.0, x.shape) >= ratio
    y = _as(x * mask / (1.0 - ratio), x.dtype)
    return [y, mask.astype(mask_dt)]


# ============================================================================
# Less common operators: losses, attention, signal processing, misc
# ============================================================================


@kernel("RMSNormalization")
def k_rms_normalization(inputs, attrs, opset):
    """Y = X / sqrt(mean(X^2 over axes [axis, rank)) + epsilon) * scale."""
    x, scale = inputs[0], inputs[1]
    axis = _axis(attrs.get("axis", -1), x.ndim)
    cdt = np.float64 if x.dtype == np.float64 else np.float32
    xf = x.astype(cdt)
    ms = np.mean(np.square(xf), axis=tuple(range(axis, x.ndim)), keepdims=True)
    y = xf / np.sqrt(ms + cdt(attrs.get("epsilon", 1e-5))) * scale.astype(cdt)
    return [_as(y, x.dtype)]


def _nll(logp: np.ndarray, target: np.ndarray, weight, reduction: str, ignore_index):
    """Negative log likelihood of logp [N, C, d...] at target [N, d...]."""
    t = target.astype(np.int64)
    ignored = t == ignore_index if ignore_index is not None else np.zeros(t.shape, np.bool_)
    tc = np.where(ignored, 0, t)
    loss = -np.take_along_axis(logp, tc[:, None], axis=1)[:, 0]
    if weight is not None:
        w = weight.astype(logp.dtype)[tc]
    else:
        w = np.ones(t.shape, logp.dtype)
    w = np.where(ignored, logp.dtype.type(0), w)
    loss = loss * w
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / w.sum()
    raise NotImplementedError(f"reduction '{reduction}'")


@kernel("NegativeLogLikelihoodLoss")
def k_nll_loss(inputs, attrs, opset):
    x, target, weight = inputs[0], inputs[1], _get(inputs, 2)
    cdt = np.float64 if x.dtype == np.float64 else np.float32
    loss = _nll(x.astype(cdt), target, weight, attrs.get("reduction", "mean"),
                attrs.get("ignore_index"))
    return [_as(loss, x.dtype)]


@kernel("SoftmaxCrossEntropyLoss")
def k_softmax_cross_entropy_loss(inputs, attrs, opset):
    """Loss of log_softmax(scores, axis=1) at the labels; 2nd output log_prob."""
    x, target, weight = inputs[0], inputs[1], _get(inputs, 2)
    cdt = np.float64 if x.dtype == np.float64 else np.float32
    d = x.astype(cdt)
    d = d - d.max(axis=1, keepdims=True)
    d -= np.log(np.exp(d).sum(axis=1, keepdims=True))
    loss = _nll(d, target, weight, attrs.get("reduction", "mean"), attrs.get("ignore_index"))
    return _LazyOutputs([_as(loss, x.dtype), _Deferred(lambda: _as(d, x.dtype))])


def _attention_mask_bias(mask, q_len, kv_len, dt):
    """Additive bias from a boolean (True = attend) or additive mask, padded
    on the key axis to the full key length with "masked"."""
    pad = kv_len - mask.shape[-1]
    if mask.dtype == np.bool_:
        if pad > 0:
            mask = np.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, pad)], constant_values=False)
        return np.where(mask, dt.type(0), dt.type(-np.inf))
    mask = mask.astype(dt)
    if pad > 0:
        mask = np.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, pad)], constant_values=-np.inf)
    return mask


@kernel("Attention")
def k_attention(inputs, attrs, opset):
    """Scaled dot-product attention (opset 23+): 3-D inputs split into heads,
    grouped-query K/V heads repeated, past K/V concatenated, boolean or
    additive mask, causal and sliding-window masks, softcap; outputs Y,
    present_key, present_value, and the QK product selected by
    qk_matmul_output_mode.  Fully masked rows give 0."""
    q, k, v = inputs[0], inputs[1], inputs[2]
    mask, past_k, past_v = _get(inputs, 3), _get(inputs, 4), _get(inputs, 5)
    nonpad = _get(inputs, 6)
    odt = q.dtype
    dt = np.dtype(np.float32) if odt in _LOWP and odt != np.float16 else odt
    q, k, v = q.astype(dt), k.astype(dt), v.astype(dt)
    rank3 = q.ndim == 3
    if rank3:
        qh, kvh = int(attrs["q_num_heads"]), int(attrs["kv_num_heads"])
        b = q.shape[0]
        q = q.reshape(b, q.shape[1], qh, -1).transpose(0, 2, 1, 3)
        k = k.reshape(b, k.shape[1], kvh, -1).transpose(0, 2, 1, 3)
        v = v.reshape(b, v.shape[1], kvh, -1).transpose(0, 2, 1, 3)
    if past_k is not None:
        k = np.concatenate([past_k.astype(dt), k], axis=2)
    if past_v is not None:
        v = np.concatenate([past_v.astype(dt), v], axis=2)
    present_k, present_v = k, v
    q_len, kv_len = q.shape[2], k.shape[2]
    scale = attrs.get("scale")
    if scale is None:
        scale = 1.0 / np.sqrt(q.shape[3])
    sq = dt.type(np.sqrt(scale))

    bias = np.zeros((q_len, kv_len), dt)
    if mask is not None:
        bias = bias + _attention_mask_bias(mask, q_len, kv_len, dt)
    # key position j is visible from query i when j - i <= offset (causal)
    if past_k is None and nonpad is not None:
        offset = (nonpad.reshape(-1).astype(np.int64) - q_len).reshape(-1, 1, 1, 1)
    else:
        offset = past_k.shape[2] if past_k is not None else 0
    diff = np.arange(q_len).reshape(-1, 1) + offset - np.arange(kv_len)  # p - j
    neg = dt.type(-np.inf)
    if attrs.get("is_causal", 0):
        bias = bias + np.where(diff >= 0, dt.type(0), neg)
    left, right = int(attrs.get("left_window_size", -1)), int(attrs.get("right_window_size", -1))
    if left >= 0 or right >= 0:
        ok = np.ones(np.shape(diff), np.bool_)
        if left >= 0:
            ok &= diff <= left
        if right >= 0:
            ok &= -diff <= right
        bias = bias + np.where(ok, dt.type(0), neg)
    if nonpad is not None:
        keep = np.arange(kv_len) < nonpad.reshape(-1, 1).astype(np.int64)
        bias = bias + np.where(keep, dt.type(0), neg).reshape(-1, 1, 1, kv_len)

    if q.shape[1] != k.shape[1]:
        rep = q.shape[1] // k.shape[1]
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
    qk = np.matmul(q * sq, np.swapaxes(k, 2, 3) * sq)
    softcap = float(attrs.get("softcap", 0.0))
    if softcap > 0:
        qk = np.tanh(qk / dt.type(softcap)) * dt.type(softcap)
    mode = int(attrs.get("qk_matmul_output_mode", 0))
    with_bias = qk + bias
    qk_out = with_bias if mode == 2 else qk
    sm = with_bias
    if attrs.get("softmax_precision"):
        sm = sm.astype(onnx_dtype_to_numpy(attrs["softmax_precision"]))
    mx = sm.max(axis=-1, keepdims=True)
    e = np.exp(sm - np.where(np.isneginf(mx), sm.dtype.type(0), mx))
    s = e.sum(axis=-1, keepdims=True)
    p = e / np.where(s == 0, sm.dtype.type(1), s)
    p = np.where(np.isneginf(np.max(bias, axis=-1, keepdims=True)), p.dtype.type(0), p)
    if mode == 3:
        qk_out = p
    y = np.matmul(p.astype(dt), v)
    if rank3:
        y = y.transpose(0, 2, 1, 3).reshape(y.shape[0], y.shape[2], -1)
    return _LazyOutputs([_as(y, odt), _as(present_k, odt), _as(present_v, odt),
                         _Deferred(lambda: _as(qk_out, odt))])


@kernel("SwiGLU")
def k_swiglu(inputs, attrs, opset):
    a, b = inputs[0], inputs[1]
    af = _up(a)
    y = af * _sigmoid(af * af.dtype.type(attrs.get("alpha", 1.0))) * _up(b)
    return [_as(y, a.dtype)]


@kernel("Det")
def k_det(inputs, attrs, opset):
    x = inputs[0]
    return [_as(np.linalg.det(_up(x)), x.dtype)]


def _window(op_type: str, fn: Callable) -> None:
    def k(inputs, attrs, opset):
        size = int(_scalar(inputs[0]))
        dt = onnx_dtype_to_numpy(attrs.get("output_datatype", 1))
        n = size if attrs.get("periodic", 1) else size - 1
        i = np.arange(size, dtype=np.float64)
        return [fn(i, n).astype(dt)]

    k.__name__ = f"k_{op_type}"
    KERNELS[op_type] = k


_window("HannWindow", lambda i, n: np.sin(np.pi * i / n) ** 2)
_window("HammingWindow", lambda i, n: 25 / 46 - (21 / 46) * np.cos(2 * np.pi * i / n))
_window("BlackmanWindow", lambda i, n: 0.42 - 0.5 * np.cos(2 * np.pi * i / n)
        + 0.08 * np.cos(4 * np.pi * i / n))


@kernel("MaxUnpool")
def k_max_unpool(inputs, attrs, opset):
    """Scatters X to the flat positions in I (MaxPool's Indices output)."""
    x, idx, out_shape = inputs[0], inputs[1], _get(inputs, 2)
    ks = attrs["kernel_shape"]
    nd = len(ks)
    strides = attrs.get("strides") or [1] * nd
    pads = attrs.get("pads") or [0] * (2 * nd)
    inferred = list(x.shape[:2]) + [
        (x.shape[2 + d] - 1) * strides[d] - (pads[d] + pads[nd + d]) + ks[d] for d in range(nd)
    ]
    y = np.zeros(int(np.prod(inferred)), x.dtype)
    y[idx.reshape(-1)] = x.reshape(-1)
    y = y.reshape(inferred)
    if out_shape is None:
        return [y]
    res = np.zeros(tuple(_ints(out_shape)), x.dtype)
    res[tuple(slice(0, n) for n in inferred)] = y
    return [res]


@kernel("Unique")
def k_unique(inputs, attrs, opset):
    """Unique values (sorted, or in order of first occurrence) with the
    indices of first occurrences, inverse indices and counts."""
    x = inputs[0]
    axis = attrs.get("axis")
    if axis is None:
        x, axis = x.reshape(-1), 0
    else:
        axis = _axis(axis, x.ndim)
    _, first, inverse, counts = np.unique(
        x, return_index=True, return_inverse=True, return_counts=True, axis=axis)
    inverse = inverse.reshape(-1)
    if not attrs.get("sorted", 1):
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        first, counts, inverse = first[order], counts[order], rank[inverse]
    y = np.take(x, first, axis=axis)
    i64 = np.int64
    return [y, first.astype(i64), inverse.astype(i64), counts.astype(i64)]


@kernel("CenterCropPad")
def k_center_crop_pad(inputs, attrs, opset):
    x, shape = inputs[0], _ints(inputs[1])
    axes = attrs.get("axes")
    axes = list(range(x.ndim)) if axes is None else [_axis(a, x.ndim) for a in axes]
    src = [slice(None)] * x.ndim
    dst = [slice(None)] * x.ndim
    out = list(x.shape)
    for a, n in zip(axes, shape):
        dim = x.shape[a]
        out[a] = n
        if n < dim:
            b = (dim - n) // 2
            src[a] = slice(b, b + n)
        elif n > dim:
            b = (n - dim) // 2
            dst[a] = slice(b, b + dim)
    y = np.zeros(out, x.dtype)
    y[tuple(dst)] = x[tuple(src)]
    return [y]


@kernel("BitCast")
def k_bitcast(inputs, attrs, opset):
    x = inputs[0]
    dt = onnx_dtype_to_numpy(attrs["to"])
    if dt.itemsize != x.dtype.itemsize:
        raise ValueError(f"BitCast: {x.dtype} and {dt} differ in width")
    return [x.copy().view(dt)]


@kernel("TensorScatter")
def k_tensor_scatter(inputs, attrs, opset):
    """Writes `update` into a copy of the KV cache along `axis` at per-batch
    positions (write_indices), wrapping around in circular mode."""
    past, update, wi = inputs[0], inputs[1], _get(inputs, 2)
    axis = _axis(attrs.get("axis", -2), past.ndim)
    if axis == 0:
        raise NotImplementedError("TensorScatter along the batch axis")
    mode = attrs.get("mode", "linear")
    cap, n = past.shape[axis], update.shape[axis]
    starts = np.zeros(past.shape[0], np.int64) if wi is None else wi.astype(np.int64).reshape(-1)
    y = past.copy()
    yv, uv = np.moveaxis(y, axis, 1), np.moveaxis(update, axis, 1)  # views
    for b in range(past.shape[0]):
        pos = starts[b] + np.arange(n)
        if mode == "circular":
            pos %= cap
        yv[b, pos] = uv[b]
    return [y]


@kernel("AffineGrid")
def k_affine_grid(inputs, attrs, opset):
    """Sampling grid [N, (D,) H, W, 2|3] of theta applied to normalized
    coordinates (x along W first)."""
    theta, size = inputs[0], _ints(inputs[1])
    sp = size[2:]
    align = bool(attrs.get("align_corners", 0))
    cdt = np.float64 if theta.dtype == np.float64 else np.float32

    def coords(n):
        if align:
            return np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
        return (2.0 * np.arange(n) + 1.0) / n - 1.0

    axes = [coords(n) for n in sp]  # (D,) H, W
    mesh = np.meshgrid(*axes, indexing="ij")
    base = np.stack([*mesh[::-1], np.ones(tuple(sp))], axis=-1)  # [..., (x, y, (z,) 1)]
    grid = np.einsum("nij,...j->n...i", theta.astype(cdt), base.astype(cdt))
    return [_as(grid, theta.dtype)]


@kernel("Col2Im")
def k_col2im(inputs, attrs, opset):
    """Sums column blocks [N, C*prod(block), L] back into images [N, C, *image]."""
    x, image, block = inputs[0], _ints(inputs[1]), _ints(inputs[2])
    nd = len(image)
    dils = attrs.get("dilations") or [1] * nd
    pads = attrs.get("pads") or [0] * (2 * nd)
    strides = attrs.get("strides") or [1] * nd
    n, c = x.shape[0], x.shape[1] // int(np.prod(block))
    nblk = [(image[d] + pads[d] + pads[nd + d] - dils[d] * (block[d] - 1) - 1) // strides[d] + 1
            for d in range(nd)]
    cols = x.reshape(n, c, *block, *nblk)
    padded = np.zeros((n, c, *[image[d] + pads[d] + pads[nd + d] for d in range(nd)]), x.dtype)
    for off in itertools.product(*[range(b) for b in block]):
        sl = _window_slice(2, [o * dl for o, dl in zip(off, dils)], strides, nblk)
        padded[sl] += cols[(slice(None), slice(None), *off)]
    crop = (slice(None), slice(None)) + tuple(slice(pads[d], pads[d] + image[d]) for d in range(nd))
    return [padded[crop]]


def _complex_of(x: np.ndarray) -> np.ndarray:
    """[..., 1] real or [..., 2] (real, imag) -> complex [...]."""
    return x[..., 0] if x.shape[-1] == 1 else x[..., 0] + 1j * x[..., 1]


def _stack_complex(z: np.ndarray) -> np.ndarray:
    return np.stack([z.real, z.imag], axis=-1)


@kernel("DFT")
def k_dft(inputs, attrs, opset):
    """DFT/IDFT along one signal axis of a [..., 1|2] real/complex tensor;
    onesided keeps the non-redundant half (forward) or means a half-spectrum
    input of a real signal (inverse)."""
    x = inputs[0]
    n_in = _get(inputs, 1)
    if opset >= 20:
        a = _get(inputs, 2)
        axis = -2 if a is None else int(_scalar(a))
    else:
        axis = attrs.get("axis", 1)
    axis = axis % x.ndim
    inverse, onesided = bool(attrs.get("inverse", 0)), bool(attrs.get("onesided", 0))
    z = _complex_of(_up(x))  # numpy's FFT keeps float32 precision, like the reference
    if n_in is None:
        n = 2 * (x.shape[axis] - 1) if inverse and onesided else x.shape[axis]
    else:
        n = int(_scalar(n_in))
    if inverse:
        if onesided:
            y = np.fft.irfft(z, n=n, axis=axis)[..., None]
        else:
            y = _stack_complex(np.fft.ifft(z, n=n, axis=axis))
    else:
        f = np.fft.fft(z, n=n, axis=axis)
        if onesided:
            f = np.take(f, np.arange(n // 2 + 1), axis=axis)
        y = _stack_complex(f)
    return [_as(y, x.dtype)]


@kernel("STFT")
def k_stft(inputs, attrs, opset):
    """Short-time Fourier transform of signals [B, L, 1|2] -> [B, frames, bins, 2]."""
    x, step = inputs[0], int(_scalar(inputs[1]))
    window, flen = _get(inputs, 2), _get(inputs, 3)
    if flen is not None:
        n = int(_scalar(flen))
    else:
        n = window.shape[0] if window is not None else x.shape[-2]
    if window is None:
        window = np.ones(n, np.float64)
    wl = window.shape[0]
    frames = 1 + (x.shape[-2] - n) // step
    z = _complex_of(x.astype(np.float64))  # [B, L]
    idx = np.arange(frames)[:, None] * step + np.arange(wl)[None, :]
    seg = z[:, np.minimum(idx, z.shape[1] - 1)] * (idx < z.shape[1])  # [B, F, wl]
    f = np.fft.fft(seg * window.astype(np.float64), n=n, axis=-1)
    if attrs.get("onesided", 1):
        f = f[..., : n // 2 + 1]
    return [_as(_stack_complex(f), x.dtype)]


@kernel("MelWeightMatrix")
def k_mel_weight_matrix(inputs, attrs, opset):
    """Triangular mel filter bank [dft_length // 2 + 1, num_mel_bins]."""
    n_mel, dft_len, rate = (int(_scalar(v)) for v in inputs[:3])
    lo, hi = (float(_scalar(v)) for v in inputs[3:5])
    mel_lo = 2595 * np.log1p(lo / 700) / np.log(10)
    mel_hi = 2595 * np.log1p(hi / 700) / np.log(10)
    step = (mel_hi - mel_lo) / (n_mel + 2)
    hz = 700 * np.expm1((np.arange(n_mel + 2) * step + mel_lo) / 2595 * np.log(10))
    bins = (((dft_len + 1) * hz) // rate).astype(np.int64)
    w = np.zeros((dft_len // 2 + 1, n_mel))
    for i in range(n_mel):
        l, c, r = bins[i], bins[i + 1], bins[i + 2]
        if c == l:
            w[c, i] = 1
        else:
            j = np.arange(l, c + 1)
            w[j, i] = (j - l) / (c - l)
        if r > c:
            j = np.arange(c, r)
            w[j, i] = (r - j) / (r - c)
    return [w.astype(onnx_dtype_to_numpy(attrs.get("output_datatype", 1)))]


@kernel("RotaryEmbedding")
def k_rotary_embedding(inputs, attrs, opset):
    """Rotary position embedding of x [B, heads, S, head] or [B, S, hidden]
    with cos/sin caches (gathered at position_ids when given)."""
    x, cos, sin, pos = inputs[0], inputs[1], inputs[2], _get(inputs, 3)
    dt = x.dtype
    xf = _up(x)
    if x.ndim == 4:
        xf = xf.transpose(0, 2, 1, 3)  # [B, S, heads, head]
    else:
        xf = xf.reshape(x.shape[0], x.shape[1], int(attrs["num_heads"]), -1)
    head = xf.shape[3]
    rd = int(attrs.get("rotary_embedding_dim", 0)) or head
    if pos is not None:
        cos, sin = cos[pos], sin[pos]
    cos, sin = _up(cos)[:, :, None, :], _up(sin)[:, :, None, :]
    rot, keep = xf[..., :rd], xf[..., rd:]
    if attrs.get("interleaved", 0):
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
    else:
        x1, x2 = rot[..., : rd // 2], rot[..., rd // 2:]
    real, imag = cos * x1 - sin * x2, sin * x1 + cos * x2
    if attrs.get("interleaved", 0):
        rot = np.stack([real, imag], axis=-1).reshape(rot.shape)
    else:
        rot = np.concatenate([real, imag], axis=-1)
    y = np.concatenate([rot, keep], axis=-1)
    y = y.transpose(0, 2, 1, 3) if x.ndim == 4 else y.reshape(x.shape)
    return [_as(y, dt)]


@kernel("LinearAttention")
def k_linear_attention(inputs, attrs, opset):
    """Recurrent linear attention over time with a [B, H_kv, d_k, d_v] state:
    update rules linear, gated (state *= exp(decay)), delta and gated_delta
    (value corrected by beta * (v - state^T k)); outputs Y and present state."""
    q, k, v = inputs[0], inputs[1], inputs[2]
    past, decay, beta = _get(inputs, 3), _get(inputs, 4), _get(inputs, 5)
    qh, kvh = int(attrs["q_num_heads"]), int(attrs["kv_num_heads"])
    rule = attrs.get("update_rule", "gated_delta")
    if rule not in ("linear", "gated", "delta", "gated_delta"):
        raise NotImplementedError(f"LinearAttention update_rule '{rule}'")
    f32 = np.float32
    b, t = q.shape[0], q.shape[1]

    def heads(x, h):
        return x.reshape(b, t, h, -1).transpose(0, 2, 1, 3).astype(f32)

    q4, k4, v4 = heads(q, qh), heads(k, kvh), heads(v, kvh)
    dk, dv = q4.shape[3], v4.shape[3]
    if decay is not None:
        g4 = (decay.reshape(b, t, kvh, 1).transpose(0, 2, 1, 3) if decay.shape[-1] == kvh
              else heads(decay, kvh)).astype(f32)
    if beta is not None:
        b4 = beta.reshape(b, t, beta.shape[-1], 1).transpose(0, 2, 1, 3).astype(f32)
    state = past.astype(f32) if past is not None else np.zeros((b, kvh, dk, dv), f32)
    scale = attrs.get("scale") or 1.0 / np.sqrt(dk)
    rep = qh // kvh
    out = np.zeros((b, qh, t, dv), f32)
    for i in range(t):
        kt, vt = k4[:, :, i], v4[:, :, i]
        if rule in ("gated", "gated_delta"):
            state = state * np.exp(g4[:, :, i])[..., None]
        if rule in ("delta", "gated_delta"):
            vt = b4[:, :, i] * (vt - np.einsum("bhdm,bhd->bhm", state, kt))
        state = state + kt[..., :, None] * vt[..., None, :]
        read = np.repeat(state, rep, axis=1) if rep > 1 else state
        out[:, :, i] = f32(scale) * np.einsum("bhd,bhdm->bhm", q4[:, :, i], read)
    y = out.transpose(0, 2, 1, 3).reshape(b, t, qh * dv)
    return [_as(y, q.dtype), _as(state, past.dtype if past is not None else q.dtype)]


@kernel("CausalConvWithState")
def k_causal_conv_with_state(inputs, attrs, opset):
    """Depthwise causal 1-D convolution [B, C, L] with a carried state of the
    last k-1 inputs; optional SiLU; outputs Y and the present state."""
    x, w, bias, past = inputs[0], inputs[1], _get(inputs, 2), _get(inputs, 3)
    act = attrs.get("activation", "none")
    if act not in ("none", "silu", "swish"):
        raise NotImplementedError(f"CausalConvWithState activation '{act}'")
    bsz, c, n = x.shape
    k = w.shape[2]
    pad = np.zeros((bsz, c, k - 1), x.dtype) if past is None else past.astype(x.dtype)
    padded = np.concatenate([pad, x], axis=2)
    cdt = np.float64 if x.dtype == np.float64 else np.float32
    pf, wf = padded.astype(cdt), w.astype(cdt)
    y = np.zeros((bsz, c, n), cdt)
    for j in range(k):
        y += pf[:, :, j:j + n] * wf[None, :, 0, j, None]
    if bias is not None:
        y += bias.astype(cdt)[None, :, None]
    y = _as(y, x.dtype)
    if act != "none":
        yf = y.astype(cdt)
        y = _as(yf * _sigmoid(yf), x.dtype)
    return [y, padded[:, :, padded.shape[2] - (k - 1):]]


# ----------------------------------------------------------------- recurrent

_RNN_ACTS: dict[str, tuple[Callable, float | None, float | None]] = {
    # name -> (fn(x, alpha, beta), default alpha, default beta)
    "relu": (lambda x, a, b: np.maximum(x, 0), None, None),
    "tanh": (lambda x, a, b: np.tanh(x), None, None),
    "sigmoid": (lambda x, a, b: _sigmoid(x), None, None),
    "affine": (lambda x, a, b: a * x + b, 1.0, 0.0),
    "leakyrelu": (lambda x, a, b: np.where(x >= 0, x, a * x), 0.01, None),
    "thresholdedrelu": (lambda x, a, b: np.where(x > a, x, 0), 1.0, None),
    "scaledtanh": (lambda x, a, b: a * np.tanh(b * x), 1.0, 1.0),
    "hardsigmoid": (lambda x, a, b: np.clip(a * x + b, 0, 1), 0.2, 0.5),
    "elu": (lambda x, a, b: np.where(x >= 0, x, a * (np.exp(x) - 1)), 1.0, None),
    "softsign": (lambda x, a, b: x / (1 + np.abs(x)), None, None),
    "softplus": (lambda x, a, b: np.logaddexp(x, 0), None, None),
}


def _rnn_activations(attrs, defaults: list[str], n_dir: int) -> list[list[Callable]]:
    """Per direction, the activation functions (alpha/beta bound): the
    attribute lists them per direction, alphas and betas in order of use."""
    names = attrs.get("activations") or defaults * n_dir
    if len(names) == len(defaults) and n_dir == 2:
        names = names * 2
    alphas = list(attrs.get("activation_alpha") or [])
    betas = list(attrs.get("activation_beta") or [])
    fns = []
    for name in names:
        key = name.lower()
        if key not in _RNN_ACTS:
            raise NotImplementedError(f"recurrent activation '{name}'")
        fn, da, db = _RNN_ACTS[key]
        a = alphas.pop(0) if da is not None and alphas else da
        b = betas.pop(0) if db is not None and betas else db
        fns.append(lambda x, fn=fn, a=a, b=b: fn(x, a, b))
    per = len(defaults)
    return [fns[d * per:(d + 1) * per] for d in range(n_dir)]


def _rnn_run(x, lens, reverse: bool, state, step):
    """Runs ``step(x_t, state) -> (h, state)`` over x [T, B, I]; batch entry b
    sees its first lens[b] steps (reversed for the reverse direction);
    returns Y [T, B, H] (zeros past each length) and the final state."""
    t_len, bsz = x.shape[0], x.shape[1]
    ys = None
    ar = np.arange(bsz)
    for t in range(t_len):
        pos = lens - 1 - t if reverse else np.full(bsz, t)
        active = (pos >= 0) & (pos < lens)
        if not active.any():
            continue
        p = np.clip(pos, 0, t_len - 1)
        h, new = step(x[p, ar], state)
        if ys is None:
            ys = np.zeros((t_len, bsz, h.shape[-1]), h.dtype)
        m = active[:, None]
        state = tuple(np.where(m, n_, o_) for n_, o_ in zip(new, state))
        ys[p[active], ar[active]] = h[active]
    if ys is None:
        ys = np.zeros((t_len, bsz, state[0].shape[-1]), state[0].dtype)
    return ys, state


def _recurrent(inputs, attrs, kind: str):
    x, w, r = inputs[0], inputs[1], inputs[2]
    bias, lens = _get(inputs, 3), _get(inputs, 4)
    h0 = _get(inputs, 5)
    c0 = _get(inputs, 6) if kind == "LSTM" else None
    peep = _get(inputs, 7) if kind == "LSTM" else None
    cdt = np.float64 if x.dtype == np.float64 else np.float32
    layout = int(attrs.get("layout", 0))
    if layout:
        x = np.swapaxes(x, 0, 1)
        h0 = None if h0 is None else np.swapaxes(h0, 0, 1)
        c0 = None if c0 is None else np.swapaxes(c0, 0, 1)
    x = x.astype(cdt)
    n_dir, hid = w.shape[0], r.shape[-1]
    t_len, bsz = x.shape[0], x.shape[1]
    direction = attrs.get("direction", "forward")
    lens = np.full(bsz, t_len, np.int64) if lens is None else lens.astype(np.int64)
    clip = attrs.get("clip")

    def cl(v):
        return np.clip(v, -clip, clip) if clip is not None else v

    defaults = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}[kind]
    acts = _rnn_activations(attrs, defaults, n_dir)
    ys, hs, cs = [], [], []
    for d in range(n_dir):
        wd, rd = w[d].astype(cdt), r[d].astype(cdt)
        ng = wd.shape[0] // hid
        bd = np.zeros(2 * ng * hid, cdt) if bias is None else bias[d].astype(cdt)
        wb, rb = bd[: ng * hid], bd[ng * hid:]
        hd = np.zeros((bsz, hid), cdt) if h0 is None else h0[d].astype(cdt)
        fa = acts[d]
        if kind == "RNN":
            def step(xt, st, wd=wd, rd=rd, wb=wb, rb=rb, fa=fa):
                h = fa[0](cl(xt @ wd.T + st[0] @ rd.T + wb + rb))
                return h, (h,)
            state = (hd,)
        elif kind == "GRU":
            lbr = int(attrs.get("linear_before_reset", 0))

            def step(xt, st, wd=wd, rd=rd, wb=wb, rb=rb, fa=fa, lbr=lbr):
                hp = st[0]
                xw = xt @ wd.T + wb
                z = fa[0](cl(xw[:, :hid] + hp @ rd[:hid].T + rb[:hid]))
                rr = fa[0](cl(xw[:, hid:2 * hid] + hp @ rd[hid:2 * hid].T + rb[hid:2 * hid]))
                if lbr:
                    hh = fa[1](cl(xw[:, 2 * hid:] + rr * (hp @ rd[2 * hid:].T + rb[2 * hid:])))
                else:
                    hh = fa[1](cl(xw[:, 2 * hid:] + (rr * hp) @ rd[2 * hid:].T + rb[2 * hid:]))
                h = (1 - z) * hh + z * hp
                return h, (h,)
            state = (hd,)
        else:
            cd = np.zeros((bsz, hid), cdt) if c0 is None else c0[d].astype(cdt)
            pd = np.zeros(3 * hid, cdt) if peep is None else peep[d].astype(cdt)
            pi, po, pf = pd[:hid], pd[hid:2 * hid], pd[2 * hid:]
            coupled = int(attrs.get("input_forget", 0))

            def step(xt, st, wd=wd, rd=rd, wb=wb, rb=rb, fa=fa, pi=pi, po=po, pf=pf, coupled=coupled):
                hp, cp = st
                g = xt @ wd.T + hp @ rd.T + wb + rb
                i = fa[0](cl(g[:, :hid] + pi * cp))
                f = 1 - i if coupled else fa[0](cl(g[:, 2 * hid:3 * hid] + pf * cp))
                c = f * cp + i * fa[1](cl(g[:, 3 * hid:]))
                o = fa[0](cl(g[:, hid:2 * hid] + po * c))
                h = o * fa[2](c)
                return h, (h, c)
            state = (hd, cd)
        reverse = direction == "reverse" or (direction == "bidirectional" and d == 1)
        y, st = _rnn_run(x, lens, reverse, state, step)
        ys.append(y)
        hs.append(st[0])
        if kind == "LSTM":
            cs.append(st[1])
    y = np.stack(ys, axis=1)  # [T, D, B, H]
    yh, yc = np.stack(hs), np.stack(cs) if cs else None
    if layout:
        y = y.transpose(2, 0, 1, 3)
        yh = yh.transpose(1, 0, 2)
        yc = None if yc is None else yc.transpose(1, 0, 2)
    dt = inputs[0].dtype
    outs = [_as(y, dt), _as(yh, dt)]
    if kind == "LSTM":
        outs.append(_as(yc, dt))
    return outs


@kernel("RNN")
def k_rnn(inputs, attrs, opset):
    """Simple RNN: H = f(X W^T + H R^T + Wb + Rb), per direction."""
    return _recurrent(inputs, attrs, "RNN")


@kernel("GRU")
def k_gru(inputs, attrs, opset):
    """GRU with gates z, r, h (linear_before_reset as in the spec)."""
    return _recurrent(inputs, attrs, "GRU")


@kernel("LSTM")
def k_lstm(inputs, attrs, opset):
    """LSTM with gates i, o, f, c, optional peepholes and input_forget."""
    return _recurrent(inputs, attrs, "LSTM")


# ----------------------------------------------------------------- sampling


def _gs_reflect(x, lo, hi):
    """Reflects coordinates at the borders until they lie in [lo, hi]."""
    rng = hi - lo
    if rng <= 0:
        return np.full_like(x, lo)
    out = x.copy()
    below, above = x < lo, x > hi
    d = np.where(below, lo - x, x - hi)
    n = np.floor(d / rng)
    r = d - n * rng
    even = n % 2 == 0
    out = np.where(below, np.where(even, lo + r, hi - r), out)
    out = np.where(above, np.where(even, hi - r, lo + r), out)
    return out


def _cubic_coeffs(t, a=-0.75):
    """Keys cubic weights of the taps at offsets -1, 0, 1, 2 for fraction t."""
    def far(s):  # 1 < |s| < 2
        return ((a * s - 5 * a) * s + 8 * a) * s - 4 * a

    def near(s):  # |s| <= 1
        return ((a + 2) * s - (a + 3)) * s * s + 1

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)


def _gs_taps(x, size: int, mode: str, padding: str, align: bool):
    """(indices [..., taps], weights [..., taps]) of GridSample along one axis
    at pixel coordinates x, with the padding rule applied to every tap."""
    lo, hi = (0.0, size - 1.0) if align else (-0.5, size - 0.5)
    if mode == "nearest":
        x = np.rint(x)
    oob = (x < lo) | (x > hi)
    if padding == "border":
        x = np.where(oob, np.clip(x, 0, size - 1), x)
    elif padding == "reflection":
        x = np.where(oob, _gs_reflect(x, lo, hi), x)
    if mode == "nearest":
        idx = np.trunc(x).astype(np.int64)[..., None]
        wts = np.ones(idx.shape, x.dtype)
    else:
        x0 = np.floor(x)
        t = x - x0
        if mode == "linear":
            offs, wts = np.arange(2), np.stack([1 - t, t], axis=-1)
        else:
            offs, wts = np.arange(-1, 3), _cubic_coeffs(t)
        idx = x0.astype(np.int64)[..., None] + offs
    if padding == "zeros":
        valid = (idx >= 0) & (idx < size)
        wts = np.where(valid, wts, 0)
    elif padding == "reflection":
        idx = np.trunc(_gs_reflect(idx.astype(np.float64), lo, hi)).astype(np.int64)
    return np.clip(idx, 0, size - 1), wts


@kernel("GridSample")
def k_grid_sample(inputs, attrs, opset):
    """Samples X [N, C, *D] at normalized grid points [N, *out, nd] (x first)
    by nearest, (bi/tri)linear or bicubic interpolation; zeros, border or
    reflection padding."""
    x, grid = inputs[0], inputs[1]
    mode = attrs.get("mode", "linear" if opset >= 20 else "bilinear")
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    padding = attrs.get("padding_mode", "zeros")
    align = bool(attrs.get("align_corners", 0))
    n, c, sp = x.shape[0], x.shape[1], x.shape[2:]
    nd = len(sp)
    g = grid.astype(np.float32) if grid.dtype in _LOWP else grid
    taps = []
    for d in range(nd):
        gd = g[..., nd - 1 - d]
        size = sp[d]
        pix = (gd + 1) / 2 * (size - 1) if align else ((gd + 1) * size - 1) / 2
        taps.append(_gs_taps(pix, size, mode, padding, align))
    cdt = np.float64 if x.dtype == np.float64 else np.float32
    xf = np.moveaxis(x.astype(cdt), 1, -1)  # [N, *D, C]
    out_sp = grid.shape[1:-1]
    nidx = np.arange(n).reshape((n,) + (1,) * len(out_sp))
    y = np.zeros((n, *out_sp, c), cdt)
    for combo in itertools.product(*[range(t[0].shape[-1]) for t in taps]):
        idx = tuple(t[0][..., k] for t, k in zip(taps, combo))
        wt = reduce(np.multiply, [t[1][..., k] for t, k in zip(taps, combo)])
        y += xf[(nidx, *idx)] * wt[..., None].astype(cdt)
    return [_as(np.moveaxis(y, -1, 1), x.dtype)]


def _bilinear_zero(img, yy, xx):
    """img [..., H, W] sampled at float pixel coords (broadcast arrays) with
    zero outside; result [..., *coords shape]."""
    h, w = img.shape[-2], img.shape[-1]
    y0, x0 = np.floor(yy).astype(np.int64), np.floor(xx).astype(np.int64)
    ty, tx = yy - y0, xx - x0
    out = 0
    for dy, wy in ((0, 1 - ty), (1, ty)):
        for dx, wx in ((0, 1 - tx), (1, tx)):
            yi, xi = y0 + dy, x0 + dx
            ok = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
            v = img[..., np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
            out = out + v * np.where(ok, wy * wx, 0)
    return out


@kernel("DeformConv")
def k_deform_conv(inputs, attrs, opset):
    """2-D deformable convolution: every kernel tap samples X (bilinear, zero
    outside) at its regular position plus a learned offset, scaled by mask."""
    x, w, off = inputs[0], inputs[1], inputs[2]
    bias, mask = _get(inputs, 3), _get(inputs, 4)
    if x.ndim != 4:
        raise NotImplementedError("DeformConv is implemented for 2-D inputs")
    n, ic, ih, iw = x.shape
    oc, icg, kh, kw = w.shape
    group, og = int(attrs.get("group", 1)), int(attrs.get("offset_group", 1))
    sh, sw = attrs.get("strides") or [1, 1]
    dh, dw = attrs.get("dilations") or [1, 1]
    pads = attrs.get("pads") or [0, 0, 0, 0]
    oh, ow = off.shape[2], off.shape[3]
    cdt = np.float64 if x.dtype == np.float64 else np.float32
    off = off.astype(cdt).reshape(n, og, kh, kw, 2, oh, ow)
    mask = np.ones((n, og, kh, kw, oh, ow), cdt) if mask is None else \
        mask.astype(cdt).reshape(n, og, kh, kw, oh, ow)
    base_y = (np.arange(oh) * sh - pads[0])[:, None] + (np.arange(kh) * dh)[:, None, None, None]
    base_x = (np.arange(ow) * sw - pads[1])[None, :] + (np.arange(kw) * dw)[None, :, None, None]
    # sampling positions [N, og, kh, kw, oh, ow]
    yy = base_y[None, None, :, :] + off[:, :, :, :, 0]
    xx = base_x[None, None, :, :] + off[:, :, :, :, 1]
    xg = x.astype(cdt).reshape(n, og, ic // og, ih, iw)
    cols = np.empty((n, og, ic // og, kh, kw, oh, ow), cdt)
    for b in range(n):
        for g in range(og):
            s = _bilinear_zero(xg[b, g], yy[b, g], xx[b, g])  # [ic/og, kh, kw, oh, ow]
            cols[b, g] = s * mask[b, g][None]
    cols = cols.reshape(n, group, icg, kh, kw, oh, ow)
    wg = w.astype(cdt).reshape(group, oc // group, icg, kh, kw)
    y = np.einsum("ngcijhw,gocij->ngohw", cols, wg).reshape(n, oc, oh, ow)
    if bias is not None:
        y = y + bias.astype(cdt).reshape(1, -1, 1, 1)
    return [_as(y, x.dtype)]


@kernel("RoiAlign")
def k_roi_align(inputs, attrs, opset):
    """RoiAlign: average (or max) of bilinear samples on a regular grid in
    each output bin of every region of interest."""
    x, rois, bidx = inputs[0], inputs[1], inputs[2]
    mode = attrs.get("mode", "avg")
    ph, pw = int(attrs.get("output_height", 1)), int(attrs.get("output_width", 1))
    ratio = int(attrs.get("sampling_ratio", 0))
    scale = float(attrs.get("spatial_scale", 1.0))
    ctm = attrs.get("coordinate_transformation_mode", "half_pixel" if opset >= 16 else "output_half_pixel")
    half = ctm == "half_pixel"
    n_c, h, w = x.shape[1], x.shape[2], x.shape[3]
    cdt = np.float64 if x.dtype == np.float64 else np.float32
    xf = x.astype(cdt)
    out = np.zeros((rois.shape[0], n_c, ph, pw), cdt)

    def axis_samples(start, extent, bins, grid, size):
        pos = start + np.arange(bins)[:, None] * (extent / bins) + \
            (np.arange(grid)[None, :] + 0.5) * (extent / bins) / grid
        bad = (pos < -1.0) | (pos > size)
        p = np.maximum(pos, 0)
        low = np.trunc(p).astype(np.int64)
        top = low >= size - 1
        low = np.where(top, size - 1, low)
        high = np.where(top, size - 1, low + 1)
        p = np.where(top, low, p)
        frac = p - low
        wl, wh = np.where(bad, 0, 1 - frac), np.where(bad, 0, frac)
        return low, high, wl, wh  # [bins, grid]

    for r in range(rois.shape[0]):
        off = 0.5 if half else 0.0
        x0, y0, x1, y1 = (float(v) * scale - off for v in rois[r, :4])
        rw, rh = x1 - x0, y1 - y0
        if not half:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        gh = ratio if ratio > 0 else int(np.ceil(rh / ph))
        gw = ratio if ratio > 0 else int(np.ceil(rw / pw))
        yl, yh, wyl, wyh = axis_samples(y0, rh, ph, gh, h)
        xl, xh, wxl, wxh = axis_samples(x0, rw, pw, gw, w)
        img = xf[int(bidx[r])]
        terms = []
        for yi, wy in ((yl, wyl), (yh, wyh)):
            for xi, wx in ((xl, wxl), (xh, wxh)):
                v = img[:, yi[:, :, None, None], xi[None, None, :, :]]  # [C, ph, gh, pw, gw]
                terms.append(v * (wy[:, :, None, None] * wx[None, None, :, :]))
        if mode == "avg":
            out[r] = sum(terms).sum(axis=(2, 4)) / max(gh * gw, 1)
        else:
            out[r] = np.max(np.maximum.reduce(terms), axis=(2, 4))
    return [_as(out, x.dtype)]


@kernel("NonMaxSuppression")
def k_non_max_suppression(inputs, attrs, opset):
    """Greedy per-class NMS; rows (batch, class, box) in selection order."""
    boxes, scores = inputs[0], inputs[1]
    mo, iou_t, score_t = _get(inputs, 2), _get(inputs, 3), _get(inputs, 4)
    max_out = int(_scalar(mo)) if mo is not None and mo.size else 0
    iou_t = float(_scalar(iou_t)) if iou_t is not None and iou_t.size else 0.0
    score_t = float(_scalar(score_t)) if score_t is not None and score_t.size else None
    center = int(attrs.get("center_point_box", 0))
    b = boxes.astype(np.float64)
    if center:
        cx, cy, bw, bh = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
        y_lo, y_hi, x_lo, x_hi = cy - bh / 2, cy + bh / 2, cx - bw / 2, cx + bw / 2
    else:
        y_lo, y_hi = np.minimum(b[..., 0], b[..., 2]), np.maximum(b[..., 0], b[..., 2])
        x_lo, x_hi = np.minimum(b[..., 1], b[..., 3]), np.maximum(b[..., 1], b[..., 3])
    area = (y_hi - y_lo) * (x_hi - x_lo)
    rows = []
    for bi in range(scores.shape[0]):
        for ci in range(scores.shape[1]):
            s = scores[bi, ci]
            cand = np.arange(s.shape[0])
            if score_t is not None:
                cand = cand[s[cand] > score_t]
            cand = cand[np.lexsort((cand, -s[cand].astype(np.float64)))]
            keep: list[int] = []
            for i in cand:
                if len(keep) >= max_out:
                    break
                ok = True
                for j in keep:
                    ih = min(y_hi[bi, i], y_hi[bi, j]) - max(y_lo[bi, i], y_lo[bi, j])
                    iw = min(x_hi[bi, i], x_hi[bi, j]) - max(x_lo[bi, i], x_lo[bi, j])
                    if ih <= 0 or iw <= 0:
                        continue
                    inter = ih * iw
                    union = area[bi, i] + area[bi, j] - inter
                    if area[bi, i] <= 0 or area[bi, j] <= 0 or union <= 0:
                        continue
                    if inter / union > iou_t:
                        ok = False
                        break
                if ok:
                    keep.append(int(i))
                    rows.append((bi, ci, int(i)))
    return [np.array(rows, np.int64).reshape(-1, 3)]


@kernel("TfIdfVectorizer")
def k_tfidf_vectorizer(inputs, attrs, opset):
    """Counts the pool's n-grams (with skips) in each row of integer tokens;
    TF, IDF or TFIDF weighting; output [B, max(ngram_indexes) + 1]."""
    x = inputs[0]
    if attrs.get("pool_strings") or x.dtype.kind not in "iu":
        raise NotImplementedError("TfIdfVectorizer over strings")
    pool = list(attrs.get("pool_int64s") or [])
    counts = list(attrs["ngram_counts"])
    indexes = list(attrs["ngram_indexes"])
    lo, hi = int(attrs["min_gram_length"]), int(attrs["max_gram_length"])
    max_skip = int(attrs["max_skip_count"])
    mode = attrs["mode"]
    weights = list(attrs.get("weights") or [])
    grams: dict[tuple, int] = {}  # n-gram -> output column
    prefixes: set[tuple] = set()
    gid = 0
    for i, start in enumerate(counts):
        end = counts[i + 1] if i + 1 < len(counts) else len(pool)
        n = i + 1
        for j in range(start, end - n + 1, n):
            if lo <= n <= hi:
                g = tuple(pool[j:j + n])
                grams.setdefault(g, indexes[gid])
                prefixes.update(g[:k] for k in range(1, n + 1))
            gid += 1
    size = max(indexes) + 1
    rows = x.reshape(1, -1) if x.ndim == 1 else x.reshape(x.shape[0], -1)
    freq = np.zeros((rows.shape[0], size), np.float64)
    for r, row in enumerate(rows.tolist()):
        length = len(row)
        for d in range(1, max_skip + 2):
            smin = lo if d == 1 else max(lo, 2)
            if smin > hi:
                break
            for s in range(length):
                if s + d * (smin - 1) >= length:
                    break
                for n in range(1, hi + 1):
                    if s + (n - 1) * d >= length:
                        break
                    g = tuple(row[s:s + (n - 1) * d + 1:d])
                    if g not in prefixes:
                        break
                    if n >= smin and g in grams:
                        freq[r, grams[g]] += 1
    if mode == "TF":
        y = freq
    elif mode == "IDF":
        y = (freq > 0) * (np.asarray(weights) if weights else 1.0)
    elif mode == "TFIDF":
        y = freq * (np.asarray(weights) if weights else 1.0)
    else:
        raise NotImplementedError(f"TfIdfVectorizer mode '{mode}'")
    y = y.astype(np.float32)
    return [y.reshape(size) if x.ndim == 1 else y]
