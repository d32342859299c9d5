"""qcc.int_kernels against direct integer formulations, bit for bit.

Each quant op is built programmatically (block arguments for activations,
quant.constant for weights/bias), verified, run through `prepare(op)` and compared
with a reference written here with plain Python ints and nested loops: naive
convolution (padding contributes zero point, i.e. 0 after the subtraction), groups,
depthwise, strides, dilations, auto_pad; fully connected; TFLite's add; mul; concat
with requantization; max/avg pooling; global average pooling; clamp; lookup; pad;
nearest resize; reshape; transpose; quantize/dequantize/requantize.

Requantization in the references is gemmlowp/TFLite restated on Python ints (C
truncating division spelled out), with the multiplier from an exact-rational
QuantizeMultiplier, so nothing here calls qcc.numerics' arithmetic.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xdsl.dialects.builtin import Float32Type, TensorType
from xdsl.ir import Block
from xdsl.utils.exceptions import VerifyException

from qcc import numerics as nx
from qcc.dialects import quant as q
from qcc.dialects.onnx import DenseAttr, py_attr
from qcc.int_kernels import prepare

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DOT = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------ integer references


def c_div(a: int, b: int) -> int:
    q_ = abs(a) // abs(b)
    return q_ if (a >= 0) == (b > 0) else -q_


def srdhm(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    return c_div(ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30)), 1 << 31)


def rdbpot(x: int, e: int) -> int:
    mask = (1 << e) - 1
    return (x >> e) + (1 if (x & mask) > (mask >> 1) + (1 if x < 0 else 0) else 0)


def clamp(v: int, lo: int, hi: int) -> int:
    return lo if v < lo else hi if v > hi else v


def qmult(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier with exact rationals."""
    if real == 0:
        return 0, 0
    frac, shift = math.frexp(real)
    m0 = math.floor(Fraction(frac) * (1 << 31) + Fraction(1, 2))
    if m0 == 1 << 31:
        m0, shift = m0 >> 1, shift + 1
    if shift < -31:
        return 0, 0
    assert shift <= 30
    return m0, shift


def requant32(acc: int, m0: int, shift: int) -> int:
    """MultiplyByQuantizedMultiplier; the left shift saturates to int32 (qcc's documented choice)."""
    assert INT32_MIN <= acc <= INT32_MAX
    left, right = max(shift, 0), max(-shift, 0)
    return rdbpot(srdhm(clamp(acc << left, INT32_MIN, INT32_MAX), m0), right)


def requant64(acc: int, m0: int, shift: int) -> int:
    """TFLite's int64 MultiplyByQuantizedMultiplier (16-bit reduced multiplier)."""
    assert -(1 << 47) <= acc < (1 << 47) and shift < 8
    reduced = ((m0 + (1 << 15)) >> 16) if m0 < 0x7FFF0000 else 0x7FFF
    total = 15 - shift
    return clamp((acc * reduced + (1 << (total - 1))) >> total, INT32_MIN, INT32_MAX)


def requant(acc: int, real: float, acc_bits: int) -> int:
    m0, shift = qmult(real)
    return requant32(acc, m0, shift) if acc_bits == 32 else requant64(acc, m0, shift)


def half_away(num: int, den: int) -> int:
    v = Fraction(num, den)
    n = math.floor(abs(v) + Fraction(1, 2))
    return n if v >= 0 else -n


# ------------------------------------------------------------------- IR helpers


def QP(bits=8, scale=0.05, zp=0, signed=True, axis=None) -> nx.QParams:
    if axis is None:
        return nx.QParams(bits, signed, (float(scale),), (int(zp),))
    return nx.QParams(bits, signed, tuple(float(s) for s in scale), tuple(int(z) for z in zp), axis)


def arg(t):
    """An SSA value of type `t` (a block argument)."""
    return Block(arg_types=[t]).args[0]


def qarg(qp: nx.QParams, shape):
    return arg(q.qtensor(qp, shape))


def const(values, qp: nx.QParams):
    return q.ConstantOp.from_values(np.asarray(values), qp).results[0]


def build(cls, operands, result_type, **attrs):
    op = cls(operands, [result_type], {k: py_attr(v) for k, v in attrs.items()})
    op.verify()
    return op


def run(op, *ins):
    return prepare(op)(list(ins))


def rand_q(rng, qp: nx.QParams, shape) -> np.ndarray:
    return rng.integers(qp.qmin, qp.qmax + 1, size=shape).astype(nx.storage_dtype(qp.bits, qp.signed))


def assert_same(got: np.ndarray, want: np.ndarray, dtype=None):
    assert got.shape == want.shape, (got.shape, want.shape)
    if dtype is not None:
        assert got.dtype == dtype, (got.dtype, dtype)
    mism = np.argwhere(got.astype(np.int64) != want.astype(np.int64))
    assert mism.size == 0, f"{len(mism)} mismatches, first at {tuple(mism[0])}: " \
                           f"{got[tuple(mism[0])]} vs {want[tuple(mism[0])]}"


scales = st.floats(min_value=2e-3, max_value=0.5)
act_bits = st.sampled_from([4, 8, 16])


# ------------------------------------------------------------------ conv


def ref_conv(x, w, b, zp_x, strides, pb, pe, dils, group, reals, zp_y, lo, hi, acc_bits):
    N, C, *sp = x.shape
    M, Cg, *ks = w.shape
    nd = len(sp)
    out = [(sp[i] + pb[i] + pe[i] - ((ks[i] - 1) * dils[i] + 1)) // strides[i] + 1 for i in range(nd)]
    Mg = M // group
    y = np.zeros((N, M, *out), np.int64)
    xl, wl = x.astype(np.int64).tolist(), w.astype(np.int64).tolist()

    def at(a, idx):
        for i in idx:
            a = a[i]
        return a

    for n in range(N):
        for m in range(M):
            g = m // Mg
            for o in itertools.product(*[range(d) for d in out]):
                acc = int(b[m]) if b is not None else 0
                for c in range(Cg):
                    for kk in itertools.product(*[range(k) for k in ks]):
                        pos = [o[i] * strides[i] - pb[i] + kk[i] * dils[i] for i in range(nd)]
                        if all(0 <= pos[i] < sp[i] for i in range(nd)):
                            acc += (at(xl, (n, g * Cg + c, *pos)) - zp_x) * at(wl, (m, c, *kk))
                y[(n, m, *o)] = clamp(requant(acc, reals[m], acc_bits) + zp_y, lo, hi)
    return y


@st.composite
def conv_case(draw):
    nd = draw(st.sampled_from([1, 2, 2]))
    if draw(st.booleans()):  # depthwise, with a channel multiplier
        group = draw(st.integers(1, 4))
        cg, mg = 1, draw(st.integers(1, 2))
    else:
        group, cg, mg = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ks = [draw(st.integers(1, 3)) for _ in range(nd)]
    strides = [draw(st.integers(1, 3)) for _ in range(nd)]
    dils = [draw(st.integers(1, 2)) for _ in range(nd)]
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    pads = [draw(st.integers(0, 2)) for _ in range(2 * nd)]
    sp = [draw(st.integers(1, 7)) for _ in range(nd)]
    sp = [max(s, (k - 1) * d + 1) for s, k, d in zip(sp, ks, dils)]  # at least one output
    return dict(nd=nd, group=group, cg=cg, mg=mg, ks=ks, strides=strides, dils=dils, auto_pad=auto_pad,
                pads=pads, sp=sp, x_bits=draw(act_bits), y_bits=draw(act_bits),
                w_bits=draw(st.sampled_from([2, 4, 8, 16])), per_channel=draw(st.booleans()),
                bias=draw(st.booleans()), sx=draw(scales), sy=draw(scales), wide=draw(st.booleans()),
                clip=draw(st.booleans()), batch=draw(st.integers(1, 2)), seed=draw(st.integers(0, 2 ** 32 - 1)))


def resolve_pads(auto_pad, sp, ks, strides, dils, pads):
    nd = len(sp)
    k_eff = [(ks[i] - 1) * dils[i] + 1 for i in range(nd)]
    if auto_pad == "VALID":
        return [0] * nd, [0] * nd
    if auto_pad.startswith("SAME"):
        pb, pe = [], []
        for i in range(nd):
            out = -(-sp[i] // strides[i])
            total = max(0, (out - 1) * strides[i] + k_eff[i] - sp[i])
            small, big = total // 2, total - total // 2
            pb.append(small if auto_pad == "SAME_UPPER" else big)
            pe.append(big if auto_pad == "SAME_UPPER" else small)
        return pb, pe
    return pads[:nd], pads[nd:]


@DOT
@given(conv_case())
def test_conv(c):
    rng = np.random.default_rng(c["seed"])
    nd, group, cg, mg = c["nd"], c["group"], c["cg"], c["mg"]
    C, M = group * cg, group * mg
    x_qp = QP(c["x_bits"], c["sx"], rng.integers(*nx.qrange(c["x_bits"])) // 3)
    y_qp = QP(c["y_bits"], c["sy"], rng.integers(*nx.qrange(c["y_bits"])) // 3)
    wmax = nx.qrange(c["w_bits"], narrow=True)[1]
    w = rng.integers(-wmax, wmax + 1, size=(M, cg, *c["ks"]))
    sw = rng.uniform(0.002, 0.05, size=M) if c["per_channel"] else [rng.uniform(0.002, 0.05)]
    w_qp = QP(c["w_bits"], sw, [0] * M, axis=0) if c["per_channel"] else QP(c["w_bits"], sw[0], 0)
    ops = [qarg(x_qp, (1, C, *c["sp"])), const(w, w_qp)]
    b = None
    if c["bias"]:
        b = rng.integers(-5000, 5000, size=M)
        b_qp = (QP(32, [c["sx"] * s for s in sw], [0] * M, axis=0) if c["per_channel"]
                else QP(32, c["sx"] * sw[0], 0))
        ops.append(const(b, b_qp))
    pb, pe = resolve_pads(c["auto_pad"], c["sp"], c["ks"], c["strides"], c["dils"], c["pads"])
    out = [(c["sp"][i] + pb[i] + pe[i] - ((c["ks"][i] - 1) * c["dils"][i] + 1)) // c["strides"][i] + 1
           for i in range(nd)]
    lo, hi = y_qp.qmin, y_qp.qmax
    attrs = dict(strides=c["strides"], dilations=c["dils"], group=group, kernel_shape=c["ks"])
    if c["auto_pad"] == "NOTSET":
        attrs["pads"] = c["pads"]
    else:
        attrs["auto_pad"] = c["auto_pad"]
    if c["clip"]:
        lo, hi = sorted(int(v) for v in rng.integers(y_qp.qmin, y_qp.qmax + 1, size=2))
        attrs.update(act_min=lo, act_max=hi)
    y_t = q.qtensor(y_qp, (1, M, *out))
    probe = build(q.ConvOp, ops, y_t, acc_bits=64, **attrs)
    need = nx.accumulator_bits(q.accumulator_bound(probe))
    acc_bits = 64 if c["wide"] else need
    op = build(q.ConvOp, ops, y_t, acc_bits=acc_bits, **attrs)
    x = rand_q(rng, x_qp, (c["batch"], C, *c["sp"]))
    got = run(op, x, w, *([] if b is None else [b]))
    reals = [c["sx"] * s / c["sy"] for s in (sw if c["per_channel"] else [sw[0]] * M)]
    want = ref_conv(x, w, b, x_qp.zero_point[0], c["strides"], pb, pe, c["dils"], group, reals,
                    y_qp.zero_point[0], lo, hi, acc_bits)
    assert_same(got, want, nx.storage_dtype(c["y_bits"]))


def test_conv_padding_is_the_zero_point():
    """A 3x3 all-ones kernel over a constant input equal to the zero point gives 0
    everywhere, including the borders where the window hangs over the padding."""
    x_qp, y_qp = QP(8, 0.1, 7), QP(8, 0.1, -3)
    w = np.ones((1, 1, 3, 3), np.int64)
    op = build(q.ConvOp, [qarg(x_qp, (1, 1, 4, 4)), const(w, QP(8, 1.0, 0))], q.qtensor(y_qp, (1, 1, 4, 4)),
               pads=[1, 1, 1, 1], acc_bits=32)
    got = run(op, np.full((1, 1, 4, 4), 7, np.int8), w)
    assert (got == -3).all()


# --------------------------------------------------------------- fully connected


@DOT
@given(k=st.integers(1, 20), n=st.integers(1, 6), lead=st.sampled_from([(), (3,)]), batch=st.integers(1, 3),
       x_bits=act_bits, y_bits=act_bits, w_bits=st.sampled_from([2, 4, 8, 16]), per_channel=st.booleans(),
       bias=st.booleans(), sx=scales, sy=scales, wide=st.booleans(), seed=st.integers(0, 2 ** 32 - 1))
def test_fully_connected(k, n, lead, batch, x_bits, y_bits, w_bits, per_channel, bias, sx, sy, wide, seed):
    rng = np.random.default_rng(seed)
    x_qp = QP(x_bits, sx, rng.integers(*nx.qrange(x_bits)) // 2)
    y_qp = QP(y_bits, sy, rng.integers(*nx.qrange(y_bits)) // 2)
    wmax = nx.qrange(w_bits, narrow=True)[1]
    w = rng.integers(-wmax, wmax + 1, size=(n, k))
    sw = list(rng.uniform(0.001, 0.05, size=n)) if per_channel else [rng.uniform(0.001, 0.05)] * n
    w_qp = QP(w_bits, sw, [0] * n, axis=0) if per_channel else QP(w_bits, sw[0], 0)
    ops = [qarg(x_qp, (1, *lead, k)), const(w, w_qp)]
    b = None
    if bias:
        b = rng.integers(-(1 << 16), 1 << 16, size=n)
        ops.append(const(b, QP(32, [sx * s for s in sw], [0] * n, axis=0) if per_channel else QP(32, sx * sw[0], 0)))
    y_t = q.qtensor(y_qp, (1, *lead, n))
    need = nx.accumulator_bits(q.accumulator_bound(build(q.FullyConnectedOp, ops, y_t, acc_bits=64)))
    acc_bits = 64 if wide else need
    op = build(q.FullyConnectedOp, ops, y_t, acc_bits=acc_bits)
    x = rand_q(rng, x_qp, (batch, *lead, k))
    got = run(op, x, w, *([] if b is None else [b]))
    want = np.zeros((batch, *lead, n), np.int64)
    zp = x_qp.zero_point[0]
    for idx in itertools.product(*[range(d) for d in (batch, *lead)]):
        for j in range(n):
            acc = sum((int(x[idx][i]) - zp) * int(w[j, i]) for i in range(k)) + (int(b[j]) if bias else 0)
            want[(*idx, j)] = clamp(requant(acc, sx * sw[j] / sy, acc_bits) + y_qp.zero_point[0],
                                    y_qp.qmin, y_qp.qmax)
    assert_same(got, want, nx.storage_dtype(y_bits))


def test_16bit_activations_need_64bit_accumulators():
    """int16 x int8 over K = 1024: |acc| reaches 1024 * 127 * 32768 > 2^31, so the
    verifier demands acc_bits = 64, and the 64-bit kernel matches TFLite's int64 path."""
    rng = np.random.default_rng(0)
    k, n = 1024, 3
    x_qp, y_qp = QP(16, 0.01, 0), QP(16, 2.0, 5)
    w = rng.integers(100, 128, size=(n, k)) * np.array([[1], [-1], [1]])
    w_qp = QP(8, [0.02, 0.03, 0.05], [0, 0, 0], axis=0)
    ops = [qarg(x_qp, (1, k)), const(w, w_qp)]
    y_t = q.qtensor(y_qp, (1, n))
    bound = q.accumulator_bound(build(q.FullyConnectedOp, ops, y_t, acc_bits=64))
    assert bound > INT32_MAX and nx.accumulator_bits(bound) == 64
    with pytest.raises(VerifyException, match="acc_bits must be 64"):
        build(q.FullyConnectedOp, ops, y_t, acc_bits=32)
    op = build(q.FullyConnectedOp, ops, y_t, acc_bits=64)
    # the worst-case inputs (by the weights' signs) plus random ones
    x = np.stack([np.where(w[0] > 0, 32767, -32768), np.where(w[0] > 0, -32768, 32767),
                  rng.integers(-32768, 32768, size=k)]).astype(np.int16)
    got = run(op, x, w)
    want = np.zeros((3, n), np.int64)
    for r in range(3):
        for j in range(n):
            acc = sum(int(a) * int(b) for a, b in zip(x[r], w[j]))
            assert abs(acc) <= bound
            want[r, j] = clamp(requant64(acc, *qmult(0.01 * w_qp.scale[j] / 2.0)) + 5, -32768, 32767)
    assert abs(sum(int(a) * int(b) for a, b in zip(x[1], w[0]))) > INT32_MAX  # really beyond int32
    assert_same(got, want, np.int16)


def test_exact_bound_admits_32bit_where_the_loose_bound_would_not():
    """Mixed-sign int16 weights over an int16 input with zp 0 (x - zp in [-32768, 32767]):
    Σ|w| max|x - zp| = 2^31 > INT32_MAX, but no input reaches it; the exact worst case is
    32768 * 65535 and acc_bits = 32 verifies and runs exactly on that worst case."""
    w = np.array([[32767, 1, -32767, -1]])
    x_qp, y_qp = QP(16, 0.01, 0), QP(8, 50.0, 0)
    ops = [qarg(x_qp, (1, 4)), const(w, QP(16, 0.001, 0))]
    assert nx.dot_bound(np.abs(w).sum(axis=1), 32768) == 1 << 31
    op = build(q.FullyConnectedOp, ops, q.qtensor(y_qp, (1, 1)), acc_bits=32)
    assert q.accumulator_bound(op) == 32768 * 65535 <= INT32_MAX
    x = np.array([[32767, 32767, -32768, -32768], [-32768, -32768, 32767, 32767]], np.int16)
    got = run(op, x, w)
    accs = [sum(int(a) * int(b) for a, b in zip(r, w[0])) for r in x]
    assert accs == [32768 * 65535, -32768 * 65535]  # both sign patterns attain the bound
    want = np.array([[clamp(requant32(a, *qmult(0.01 * 0.001 / 50.0)), -128, 127)] for a in accs])
    assert_same(got, want, np.int8)


def test_accumulator_bound_beyond_2_47_is_a_verify_error():
    k = (1 << 17) + 8  # 32767 * 32768 * k >= 2^47
    w = np.full((1, k), 32767)
    ops = [qarg(QP(16, 0.01, 0), (1, k)), const(w, QP(16, 0.001, 0))]
    with pytest.raises(VerifyException, match="exceeds 2\\^47"):
        build(q.FullyConnectedOp, ops, q.qtensor(QP(16, 1.0, 0), (1, 1)), acc_bits=64)


def test_unsigned_and_int32_constants_unpack_to_their_values():
    u = np.array([0, 9, 15, 200 % 16], np.uint8)
    c = q.ConstantOp.from_values(u, QP(4, 0.1, 8, signed=False))
    c.verify()
    assert c.values().tolist() == u.tolist()
    u8 = np.array([[0, 128, 255]], np.uint8)
    c = q.ConstantOp.from_values(u8, QP(8, 0.1, 128, signed=False))
    assert c.values().tolist() == u8.tolist() and run(c).dtype == np.uint8
    b = np.array([-(1 << 31), -1, 0, (1 << 31) - 1])
    c = q.ConstantOp.from_values(b, QP(32, 0.001, 0))
    c.verify()
    assert c.values().tolist() == b.tolist() and c.values().dtype == np.int32


# ---------------------------------------------------------------- elementwise


def broadcast_ints(*arrays):
    bs = np.broadcast_arrays(*[a.astype(np.int64) for a in arrays])
    return bs[0].shape, [b.reshape(-1).tolist() for b in bs]


shape_pairs = st.sampled_from([((2, 3), (2, 3)), ((2, 3), (3,)), ((1, 3, 1), (2, 1, 4)), ((4,), (1,)), ((), (5,))])


@FAST
@given(shapes=shape_pairs, bits=st.tuples(act_bits, act_bits, act_bits), s=st.tuples(scales, scales, scales),
       clip=st.booleans(), seed=st.integers(0, 2 ** 32 - 1))
def test_add(shapes, bits, s, clip, seed):
    rng = np.random.default_rng(seed)
    qa, qb, qy = (QP(bt, sc, rng.integers(*nx.qrange(bt)) // 2) for bt, sc in zip(bits, s))
    out = np.broadcast_shapes(*shapes)
    lo, hi = qy.qmin, qy.qmax
    attrs = {}
    if clip:
        lo, hi = sorted(int(v) for v in rng.integers(qy.qmin, qy.qmax + 1, size=2))
        attrs = dict(act_min=lo, act_max=hi)
    op = build(q.AddOp, [qarg(qa, shapes[0]), qarg(qb, shapes[1])], q.qtensor(qy, out), **attrs)
    a, b = rand_q(rng, qa, shapes[0]), rand_q(rng, qb, shapes[1])
    got = run(op, a, b)
    # TFLite PrepareGeneralSubOp / AddElementwise
    left = 15 if 16 in bits else 20
    twice = 2 * max(qa.scale[0], qb.scale[0])
    ma, mb = qmult(qa.scale[0] / twice), qmult(qb.scale[0] / twice)
    my = qmult(twice / ((1 << left) * qy.scale[0]))
    shape, (al, bl) = broadcast_ints(a, b)
    want = []
    for va, vb in zip(al, bl):
        sa = requant32((va - qa.zero_point[0]) * (1 << left), *ma)
        sb = requant32((vb - qb.zero_point[0]) * (1 << left), *mb)
        want.append(clamp(requant32(sa + sb, *my) + qy.zero_point[0], lo, hi))
    assert_same(got, np.array(want).reshape(shape), nx.storage_dtype(qy.bits))


@FAST
@given(shapes=shape_pairs, bits=st.tuples(act_bits, act_bits, act_bits), s=st.tuples(scales, scales, scales),
       clip=st.booleans(), seed=st.integers(0, 2 ** 32 - 1))
def test_mul(shapes, bits, s, clip, seed):
    rng = np.random.default_rng(seed)
    # 16-bit operands keep |q - zp| <= 2^15 so that the product fits the int32 accumulator
    qa, qb, qy = (QP(bt, sc, (rng.integers(*nx.qrange(bt)) // 2) if bt < 16 else 0) for bt, sc in zip(bits, s))
    out = np.broadcast_shapes(*shapes)
    lo, hi = qy.qmin, qy.qmax
    attrs = {}
    if clip:
        lo, hi = sorted(int(v) for v in rng.integers(qy.qmin, qy.qmax + 1, size=2))
        attrs = dict(act_min=lo, act_max=hi)
    op = build(q.MulOp, [qarg(qa, shapes[0]), qarg(qb, shapes[1])], q.qtensor(qy, out), **attrs)
    a, b = rand_q(rng, qa, shapes[0]), rand_q(rng, qb, shapes[1])
    got = run(op, a, b)
    real = qa.scale[0] * qb.scale[0] / qy.scale[0]
    shape, (al, bl) = broadcast_ints(a, b)
    want = [clamp(requant((va - qa.zero_point[0]) * (vb - qb.zero_point[0]), real, 32) + qy.zero_point[0], lo, hi)
            for va, vb in zip(al, bl)]
    assert_same(got, np.array(want).reshape(shape), nx.storage_dtype(qy.bits))


def test_mul_product_beyond_int32_is_a_verify_error():
    qa = QP(16, 0.01, -30000)
    with pytest.raises(VerifyException, match="int32"):
        build(q.MulOp, [qarg(qa, (4,)), qarg(qa, (4,))], q.qtensor(QP(16, 1.0, 0), (4,)))


@given(bits=act_bits, seed=st.integers(0, 2 ** 32 - 1))
@FAST
def test_clamp(bits, seed):
    rng = np.random.default_rng(seed)
    qp = QP(bits, 0.1, rng.integers(*nx.qrange(bits)) // 2)
    lo, hi = sorted(int(v) for v in rng.integers(qp.qmin, qp.qmax + 1, size=2))
    op = build(q.ClampOp, [qarg(qp, (3, 5))], q.qtensor(qp, (3, 5)), act_min=lo, act_max=hi)
    x = rand_q(rng, qp, (3, 5))
    want = np.array([[clamp(int(v), lo, hi) for v in row] for row in x])
    assert_same(run(op, x), want, x.dtype)


@pytest.mark.parametrize("in_bits,out", [(8, (8, True)), (4, (8, True)), (8, (16, True)), (8, (8, False)),
                                         (2, (4, True))])
def test_lookup(in_bits, out):
    rng = np.random.default_rng(in_bits)
    x_qp = QP(in_bits, 0.1, 0)
    y_qp = QP(out[0], 0.2, 0 if out[1] else 3, signed=out[1])
    table = rng.integers(y_qp.qmin, y_qp.qmax + 1, size=1 << in_bits).astype(nx.storage_dtype(*out))
    op = q.LookupOp([qarg(x_qp, (2, 9))], [q.qtensor(y_qp, (2, 9))], {"table": DenseAttr(table)})
    op.verify()
    x = rand_q(rng, x_qp, (2, 9))
    x.reshape(-1)[:2] = [x_qp.qmin, x_qp.qmax]
    want = np.array([[int(table[int(v) - x_qp.qmin]) for v in row] for row in x])
    assert_same(run(op, x), want, table.dtype)


# ----------------------------------------------------------- edges of a region


def test_quantize():
    qp = QP(8, 0.25, 3)
    x = np.array([0.125, -0.125, 0.375, -0.375, 0.1, -31.9, 40.0, -40.0, 0.0, 1e30, -1e30], np.float32)
    op = build(q.QuantizeOp, [arg(TensorType(Float32Type(), [11]))], q.qtensor(qp, (11,)))
    got = run(op, x)
    want = []
    for v in x.tolist():
        r = v / 0.25
        n = math.floor(abs(r) + 0.5)
        want.append(clamp((n if r >= 0 else -n) + 3, -128, 127))
    assert want[:4] == [4, 2, 5, 1]  # ties away from zero, then + zp
    assert_same(got, np.array(want), np.int8)


@FAST
@given(bits=st.sampled_from([4, 8, 16]), signed=st.booleans(), scale=scales, seed=st.integers(0, 2 ** 32 - 1))
def test_quantize_dequantize(bits, signed, scale, seed):
    rng = np.random.default_rng(seed)
    lo, hi = nx.qrange(bits, signed)
    qp = QP(bits, scale, int(rng.integers(lo, hi + 1)), signed=signed)
    x = (rng.standard_normal(20) * scale * (hi - lo) / 4).astype(np.float32)
    x[:4] = np.float32(scale) * np.array([0.5, -0.5, 2.5, -1.5], np.float32)
    qop = build(q.QuantizeOp, [arg(TensorType(Float32Type(), [20]))], q.qtensor(qp, (20,)))
    got = run(qop, x)
    zp = qp.zero_point[0]
    want = []
    for v in x.tolist():
        r = v / scale
        n = math.floor(abs(r) + 0.5)
        want.append(clamp((n if r >= 0 else -n) + zp, lo, hi))
    assert_same(got, np.array(want), nx.storage_dtype(bits, signed))
    dop = build(q.DequantizeOp, [qarg(qp, (20,))], TensorType(Float32Type(), [20]))
    d = run(dop, got)
    assert d.dtype == np.float32
    assert d.tolist() == [float(np.float32((int(v) - zp) * scale)) for v in got]


@FAST
@given(a_bits=act_bits, y_bits=act_bits, sa=scales, sy=scales, seed=st.integers(0, 2 ** 32 - 1))
def test_requantize(a_bits, y_bits, sa, sy, seed):
    rng = np.random.default_rng(seed)
    qa = QP(a_bits, sa, rng.integers(*nx.qrange(a_bits)) // 2)
    qy = QP(y_bits, sy, rng.integers(*nx.qrange(y_bits)) // 2)
    op = build(q.RequantizeOp, [qarg(qa, (2, 7))], q.qtensor(qy, (2, 7)))
    x = rand_q(rng, qa, (2, 7))
    x.reshape(-1)[:2] = [qa.qmin, qa.qmax]
    want = [[clamp(requant(int(v) - qa.zero_point[0], sa / sy, 32) + qy.zero_point[0], qy.qmin, qy.qmax)
             for v in row] for row in x]
    assert_same(run(op, x), np.array(want), nx.storage_dtype(y_bits))


# ------------------------------------------------------------- data movement


@FAST
@given(n=st.integers(1, 4), axis=st.sampled_from([0, 1, -1]), same=st.lists(st.booleans(), min_size=4, max_size=4),
       bits=st.sampled_from([4, 8, 16]), seed=st.integers(0, 2 ** 32 - 1))
def test_concat(n, axis, same, bits, seed):
    rng = np.random.default_rng(seed)
    qy = QP(bits, 0.05, 3)
    qps = [qy if same[i] else QP(bits, float(rng.uniform(0.01, 0.2)), int(rng.integers(-7, 8))) for i in range(n)]
    sizes = [int(rng.integers(1, 4)) for _ in range(n)]
    ax = axis % 2
    shapes = [(s, 3) if ax == 0 else (2, s) for s in sizes]
    out = (sum(sizes), 3) if ax == 0 else (2, sum(sizes))
    op = build(q.ConcatOp, [qarg(p, s) for p, s in zip(qps, shapes)], q.qtensor(qy, out), axis=axis)
    xs = [rand_q(rng, p, s) for p, s in zip(qps, shapes)]
    parts = []
    for p, x in zip(qps, xs):
        if p == qy:
            parts.append(x.astype(np.int64))
        else:
            real = p.scale[0] / qy.scale[0]
            parts.append(np.array([[clamp(requant(int(v) - p.zero_point[0], real, 32) + 3, qy.qmin, qy.qmax)
                                    for v in row] for row in x]))
    want = np.concatenate(parts, axis=ax)
    assert_same(run(op, *xs), want, nx.storage_dtype(bits))


def pool_out(sp, ks, strides, dils, pb, pe, ceil):
    out = []
    for i in range(len(sp)):
        num = sp[i] + pb[i] + pe[i] - ((ks[i] - 1) * dils[i] + 1)
        if ceil:
            o = -(-num // strides[i]) + 1
            if (o - 1) * strides[i] >= sp[i] + pb[i]:
                o -= 1
        else:
            o = num // strides[i] + 1
        out.append(o)
    return out


@st.composite
def pool_case(draw, dilations=True, ceil=True):
    nd = draw(st.sampled_from([1, 2, 2]))
    ks = [draw(st.integers(1, 3)) for _ in range(nd)]
    dils = [draw(st.integers(1, 2)) if dilations else 1 for _ in range(nd)]
    strides = [draw(st.integers(1, 3)) for _ in range(nd)]
    pads = [draw(st.integers(0, k - 1)) for k in ks] + [draw(st.integers(0, k - 1)) for k in ks]
    sp = [max(draw(st.integers(1, 7)), (k - 1) * d + 1) for k, d in zip(ks, dils)]
    return dict(nd=nd, ks=ks, dils=dils, strides=strides, pads=pads, sp=sp,
                ceil=draw(st.booleans()) if ceil else False, bits=draw(act_bits),
                include_pad=draw(st.integers(0, 1)), batch=draw(st.integers(1, 2)),
                seed=draw(st.integers(0, 2 ** 32 - 1)))


def windows(c):
    nd = c["nd"]
    pb, pe = c["pads"][:nd], c["pads"][nd:]
    out = pool_out(c["sp"], c["ks"], c["strides"], c["dils"], pb, pe, c["ceil"])
    for o in itertools.product(*[range(d) for d in out]):
        taps = [[o[i] * c["strides"][i] - pb[i] + kk[i] * c["dils"][i] for i in range(nd)]
                for kk in itertools.product(*[range(k) for k in c["ks"]])]
        yield o, [t for t in taps if all(0 <= t[i] < c["sp"][i] for i in range(nd))], out


@FAST
@given(pool_case())
def test_max_pool(c):
    rng = np.random.default_rng(c["seed"])
    qp = QP(c["bits"], 0.1, rng.integers(*nx.qrange(c["bits"])) // 2)
    nd = c["nd"]
    out = pool_out(c["sp"], c["ks"], c["strides"], c["dils"], c["pads"][:nd], c["pads"][nd:], c["ceil"])
    op = build(q.MaxPoolOp, [qarg(qp, (1, 3, *c["sp"]))], q.qtensor(qp, (1, 3, *out)), kernel_shape=c["ks"],
               strides=c["strides"], pads=c["pads"], dilations=c["dils"], ceil_mode=int(c["ceil"]))
    x = rand_q(rng, qp, (c["batch"], 3, *c["sp"]))
    want = np.zeros((c["batch"], 3, *out), np.int64)
    for n, ch in itertools.product(range(c["batch"]), range(3)):
        for o, valid, _ in windows(c):
            want[(n, ch, *o)] = max(int(x[(n, ch, *t)]) for t in valid)
    assert_same(run(op, x), want, x.dtype)


@FAST
@given(pool_case(dilations=False, ceil=False))
def test_avg_pool(c):
    rng = np.random.default_rng(c["seed"])
    qp = QP(c["bits"], 0.1, rng.integers(*nx.qrange(c["bits"])) // 2)
    nd = c["nd"]
    out = pool_out(c["sp"], c["ks"], c["strides"], [1] * nd, c["pads"][:nd], c["pads"][nd:], False)
    op = build(q.AvgPoolOp, [qarg(qp, (1, 2, *c["sp"]))], q.qtensor(qp, (1, 2, *out)), kernel_shape=c["ks"],
               strides=c["strides"], pads=c["pads"], count_include_pad=c["include_pad"])
    x = rand_q(rng, qp, (c["batch"], 2, *c["sp"]))
    zp = qp.zero_point[0]
    want = np.zeros((c["batch"], 2, *out), np.int64)
    for n, ch in itertools.product(range(c["batch"]), range(2)):
        for o, valid, _ in windows(c):
            total = sum(int(x[(n, ch, *t)]) - zp for t in valid)  # padding adds (zp - zp) = 0
            count = math.prod(c["ks"]) if c["include_pad"] else len(valid)
            want[(n, ch, *o)] = clamp(half_away(total, count) + zp, qp.qmin, qp.qmax)
    assert_same(run(op, x), want, x.dtype)


def test_avg_pool_rounds_half_away_from_zero():
    qp = QP(8, 0.1, 0)
    op = build(q.AvgPoolOp, [qarg(qp, (1, 1, 4))], q.qtensor(qp, (1, 1, 2)), kernel_shape=[2], strides=[2])
    assert run(op, np.array([[[1, 2, -1, -2]]], np.int8)).tolist() == [[[2, -2]]]  # 1.5 -> 2, -1.5 -> -2


@FAST
@given(bits=act_bits, y_bits=act_bits, sp=st.lists(st.integers(1, 5), min_size=1, max_size=2), sx=scales, sy=scales,
       batch=st.integers(1, 2), seed=st.integers(0, 2 ** 32 - 1))
def test_global_avg_pool(bits, y_bits, sp, sx, sy, batch, seed):
    rng = np.random.default_rng(seed)
    qx = QP(bits, sx, rng.integers(*nx.qrange(bits)) // 2)
    qy = QP(y_bits, sy, rng.integers(*nx.qrange(y_bits)) // 2)
    op = build(q.GlobalAvgPoolOp, [qarg(qx, (1, 3, *sp))], q.qtensor(qy, (1, 3, *[1] * len(sp))))
    x = rand_q(rng, qx, (batch, 3, *sp))
    count = math.prod(sp)
    want = np.zeros((batch, 3, *[1] * len(sp)), np.int64)
    for n, ch in itertools.product(range(batch), range(3)):
        acc = sum(int(v) - qx.zero_point[0] for v in x[n, ch].reshape(-1))
        want[(n, ch) + (0,) * len(sp)] = clamp(requant(acc, sx / (sy * count), 32) + qy.zero_point[0],
                                               qy.qmin, qy.qmax)
    assert_same(run(op, x), want, nx.storage_dtype(y_bits))


@FAST
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), data=st.data(), bits=act_bits,
       seed=st.integers(0, 2 ** 32 - 1))
def test_pad(shape, data, bits, seed):
    rng = np.random.default_rng(seed)
    qp = QP(bits, 0.1, rng.integers(*nx.qrange(bits)) // 2)
    nd = len(shape)
    pads = data.draw(st.lists(st.integers(0, 2), min_size=2 * nd, max_size=2 * nd))
    value = data.draw(st.one_of(st.none(), st.integers(qp.qmin, qp.qmax)))
    out = [shape[i] + pads[i] + pads[i + nd] for i in range(nd)]
    attrs = dict(pads=pads) if value is None else dict(pads=pads, value=value)
    op = build(q.PadOp, [qarg(qp, shape)], q.qtensor(qp, out), **attrs)
    x = rand_q(rng, qp, shape)
    fill = qp.zero_point[0] if value is None else value
    want = np.zeros(out, np.int64)
    for idx in itertools.product(*[range(d) for d in out]):
        src = [idx[i] - pads[i] for i in range(nd)]
        want[idx] = int(x[tuple(src)]) if all(0 <= src[i] < shape[i] for i in range(nd)) else fill
    assert_same(run(op, x), want, x.dtype)


def nearest_index(o: int, n_in: int, n_out: int, ctm: str, mode: str) -> int:
    s = Fraction(n_out, n_in)
    if ctm == "half_pixel":
        xo = (o + Fraction(1, 2)) / s - Fraction(1, 2)
    elif ctm == "asymmetric":
        xo = o / s
    elif ctm == "align_corners":
        xo = Fraction(0) if n_out == 1 else Fraction(o * (n_in - 1), n_out - 1)
    else:
        raise AssertionError(ctm)
    fl = math.floor(xo)
    if mode == "floor":
        i = fl
    elif mode == "ceil":
        i = math.ceil(xo)
    elif mode == "round_prefer_floor":
        i = fl if xo - fl <= Fraction(1, 2) else fl + 1
    else:  # round_prefer_ceil
        i = fl if xo - fl < Fraction(1, 2) else fl + 1
    return clamp(i, 0, n_in - 1)


@pytest.mark.parametrize("ctm", ["half_pixel", "asymmetric", "align_corners"])
@pytest.mark.parametrize("mode", ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
def test_resize_nearest(ctm, mode):
    rng = np.random.default_rng(1)
    qp = QP(8, 0.1, 2)
    # sizes whose coordinates are exact in float (integer and 1/2 factors) include the ties
    for (h, w), (oh, ow) in [((2, 3), (4, 6)), ((3, 2), (9, 6)), ((4, 6), (2, 3)), ((4, 4), (4, 4)), ((2, 2), (3, 3))]:
        attrs = dict(coordinate_transformation_mode=ctm, nearest_mode=mode, mode="nearest")
        op = build(q.ResizeOp, [qarg(qp, (1, 2, h, w))], q.qtensor(qp, (1, 2, oh, ow)), **attrs)
        x = rand_q(rng, qp, (2, 2, h, w))
        want = np.zeros((2, 2, oh, ow), np.int64)
        for n, ch, i, j in itertools.product(range(2), range(2), range(oh), range(ow)):
            want[n, ch, i, j] = x[n, ch, nearest_index(i, h, oh, ctm, mode), nearest_index(j, w, ow, ctm, mode)]
        assert_same(run(op, x), want, x.dtype)


def test_reshape_and_transpose():
    rng = np.random.default_rng(2)
    qp = QP(4, 0.3, -2)
    x = rand_q(rng, qp, (2, 3, 4))
    r = build(q.ReshapeOp, [qarg(qp, (2, 3, 4))], q.qtensor(qp, (4, 6)))
    got = run(r, x)
    flat = [int(v) for v in x.reshape(-1)]
    assert_same(got, np.array([[flat[i * 6 + j] for j in range(6)] for i in range(4)]), x.dtype)
    # a batch larger than the declared one reshapes sample by sample
    r1 = build(q.ReshapeOp, [qarg(qp, (1, 3, 4))], q.qtensor(qp, (1, 12)))
    assert run(r1, x).shape == (2, 12) and run(r1, x).reshape(-1).tolist() == flat
    for perm in itertools.permutations(range(3)):
        t = build(q.TransposeOp, [qarg(qp, (2, 3, 4))], q.qtensor(qp, tuple((2, 3, 4)[p] for p in perm)),
                  perm=list(perm))
        got = run(t, x)
        want = np.zeros(got.shape, np.int64)
        for idx in itertools.product(*[range(d) for d in got.shape]):
            src = [0, 0, 0]
            for k, p in enumerate(perm):
                src[p] = idx[k]
            want[idx] = x[tuple(src)]
        assert_same(got, want, x.dtype)
        assert got.flags.c_contiguous


def test_every_quant_op_is_covered():
    covered = {q.QuantizeOp, q.DequantizeOp, q.RequantizeOp, q.ConstantOp, q.ConvOp, q.FullyConnectedOp, q.AddOp,
               q.MulOp, q.ConcatOp, q.MaxPoolOp, q.AvgPoolOp, q.GlobalAvgPoolOp, q.ClampOp, q.LookupOp, q.PadOp,
               q.ResizeOp, q.ReshapeOp, q.TransposeOp, q.ChannelScaleOp, q.SoftmaxOp,  # these two: test_fusion.py
               q.SliceOp, q.InsertSliceOp}  # these two: test_patches_c.py
    assert covered == set(q.QUANT_OPS)
