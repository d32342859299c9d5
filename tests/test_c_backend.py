"""The C backend (qcc.backends.c) against the integer interpreter, bit for bit.

The three digit models at uniform int8, at mixed 4/8 bits under a size budget,
and at 2/4/8/16 bits under a tighter budget (16-bit activations, 2-bit weights,
float ops the lowering leaves); lenet at 16 bits (64-bit accumulators). The
float entry point must return exactly the interpreter's float32 outputs, the
integer entry point exactly its output codes. Every quant op, and both conv
code paths, also run as small generated modules with random full-range codes.
One model is rebuilt with address and undefined-behaviour sanitizers (every
buffer its own object, so overruns between tensors are caught), and a model
whose names contain comment terminators, quotes, backslashes, newlines and
non-ASCII must compile with -Werror and keep those names intact in model.h.

Without gcc the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import onnx
import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import Float32Type, ModuleOp, TensorType
from xdsl.ir import Block, Region

import qcc
from conftest import MODELS
from qcc import numerics as nx
from qcc.backends.c import emit_model
from qcc.backends.c import kernels as ck
from qcc.backends.c.run import CFLAGS, SANITIZE, build_host, compiler, io_meta, run_host
from qcc.dialects import quant as q
from qcc.dialects.onnx import py_attr
from qcc.interpreter import main_func, run_samples

N_SAMPLES = 20
F32 = Float32Type()

BUDGET_4_8 = {"lenet": 40, "resnet": 120, "mbv3": 55}  # KB: below the int8 size, above the all-4-bit floor
BUDGET_MIXED = {"lenet": 25, "resnet": 60, "mbv3": 30}  # KB: forces 2-bit weights next to 16-bit activations
CONFIGS = {
    "int8": lambda m: dict(bits=(8,)),
    "int4-8": lambda m: dict(bits=(4, 8), size_budget_kb=BUDGET_4_8[m]),
    "mixed-2-16": lambda m: dict(bits=(2, 4, 8, 16), size_budget_kb=BUDGET_MIXED[m]),
    "int16": lambda m: dict(bits=(16,)),
}
CASES = [(m, c) for m in ("lenet", "resnet", "mbv3") for c in ("int8", "int4-8", "mixed-2-16")] + [("lenet", "int16")]


@pytest.fixture(scope="session")
def gcc():
    cc = compiler()
    if cc is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no gcc on PATH (or $CC): the C backend must be tested in CI")
        pytest.skip("no gcc on PATH (or $CC): the C backend tests need a host C compiler")
    return cc


_ARTIFACTS: dict = {}


def compiled(model: str, config: str, tmp_path_factory):
    key = (model, config)
    if key not in _ARTIFACTS:
        with np.load(MODELS / "digits_calib.npz") as z:
            calib = {"input": z["input"]}
        out = tmp_path_factory.mktemp(f"qcc_{model}_{config}")
        _ARTIFACTS[key] = qcc.compile(MODELS / f"{model}_digits.onnx", str(out), calib=calib, force=True,
                                      **CONFIGS[config](model))
    return _ARTIFACTS[key]


# ------------------------------------------------------------------ oracles


def interpreter_codes(module: ModuleOp, inputs: dict) -> dict[int, np.ndarray]:
    """Output j's integer codes (the operand of its quant.dequantize) as the interpreter computes them."""
    ret = list(main_func(module).body.block.ops)[-1]
    targets: dict = {}
    for j, v in enumerate(ret.operands):
        src = v.owner.operands[0]
        targets.setdefault(src.owner, []).append((j, src.index))
    got: dict[int, list] = {}

    def observe(op, results):
        for j, i in targets.get(op, ()):
            got.setdefault(j, []).append(np.asarray(results[i]))

    run_samples(module, inputs, observer=observe)
    shapes = {j: tuple(v.owner.operands[0].type.get_shape()) for j, v in enumerate(ret.operands)}
    # samples come stacked along a leading batch 1, or one whole declared tensor each
    return {j: np.concatenate(parts) if shapes[j][:1] == (1,) else np.stack(parts) for j, parts in got.items()}


def assert_bits_equal(got: np.ndarray, want: np.ndarray, what: str) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs {want.shape}"
    if want.dtype == np.float32:
        diff = np.argwhere(got.view(np.uint32) != want.view(np.uint32))
    else:
        diff = np.argwhere(got.astype(np.int64) != want.astype(np.int64))
    assert diff.size == 0, (f"{what}: {len(diff)} of {want.size} values differ, first at {tuple(diff[0])}: "
                            f"C {got[tuple(diff[0])]} vs interpreter {want[tuple(diff[0])]}")


def check_c_against_interpreter(module: ModuleOp, float_inputs: dict, work, **emit_kw) -> object:
    """Builds `module`'s C, runs both entry points, compares with the interpreter; returns the CModel."""
    cm = emit_model(module, **{k: v for k, v in emit_kw.items() if k != "cflags"})
    exe = build_host(cm.files, work, cflags=emit_kw.get("cflags", CFLAGS))
    want = run_samples(module, float_inputs)
    got, _ = run_host(exe, cm.files, float_inputs)
    for name in want:
        assert_bits_equal(got[name], want[name], f"float output {name!r}")
    if cm.has_run_q:
        meta = io_meta(cm.files)
        codes_in = {}
        for d in meta["inputs"]:
            qp = nx.QParams(d["bits"], True, (d["scale"],), (d["zero_point"],))
            codes_in[d["name"]] = nx.quantize(np.asarray(float_inputs[d["name"]], np.float32), qp)
        want_q = interpreter_codes(module, float_inputs)
        got_q, _ = run_host(exe, cm.files, codes_in, codes=True)
        for j, d in enumerate(meta["outputs"]):
            assert_bits_equal(got_q[d["name"]], want_q[j], f"output codes {d['name']!r}")
    return cm


# ------------------------------------------------------------------ whole models


def _widths(module: ModuleOp) -> tuple[set, set, set]:
    w_bits, a_bits, acc = set(), set(), set()
    for op in module.walk():
        if isinstance(op, q.ConvOp | q.FullyConnectedOp):
            w_bits.add(q.qparams_of(op.operands[1].type).bits)
            acc.add(op.attr("acc_bits"))
        if isinstance(op, q.QuantOp) and not isinstance(op, q.ConstantOp | q.DequantizeOp):
            a_bits.add(q.qparams_of(op.results[0].type).bits)
    return w_bits, a_bits, acc


@pytest.mark.parametrize("model,config", CASES)
def test_model_matches_interpreter_bit_for_bit(model, config, gcc, digits_test, tmp_path_factory):
    art = compiled(model, config, tmp_path_factory)
    w_bits, a_bits, acc = _widths(art.module)
    # the configurations exercise what they are named for
    if config == "int4-8":
        assert 4 in w_bits
    if config == "mixed-2-16":
        assert 2 in w_bits and 16 in a_bits
    if config == "int16":
        assert 64 in acc
    x = {"input": digits_test["input"][:N_SAMPLES]}
    cm = check_c_against_interpreter(art.module, x, tmp_path_factory.mktemp(f"c_{model}_{config}"))
    assert cm.has_run_q
    assert 0 < cm.arena_bytes < cm.naive_bytes
    text = cm.files["model.c"]
    assert "malloc" not in text and "math.h" not in text or cm.io["libm"]


def test_sanitizers_find_nothing(gcc, digits_test, tmp_path_factory):
    """mbv3 with 2-bit weights, 16-bit activations and float ops, under ASan and UBSan,
    every tensor in its own object so that an overrun into a neighbour is reported."""
    art = compiled("mbv3", "mixed-2-16", tmp_path_factory)
    x = {"input": digits_test["input"][:3]}
    check_c_against_interpreter(art.module, x, tmp_path_factory.mktemp("c_asan"), separate_buffers=True,
                                cflags=("-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", *SANITIZE))


NASTY = ["in */ put \"q\" \\ \n\u00fc??/", "lo/*gits*/ \u2603\r\n\\\"", "*/ #include <x> /*", "\\", "a\tb\u0000c"]


def _rename_everything(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str, str]:
    """Every node and tensor renamed to something no C comment or string survives unescaped."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    names = {}

    def new(old: str) -> str:
        if old and old not in names:
            names[old] = f"{NASTY[len(names) % len(NASTY)]}#{len(names)}"
        return names.get(old, old)

    for vi in [*g.input, *g.output, *g.value_info]:
        vi.name = new(vi.name)
    for init in g.initializer:
        init.name = new(init.name)
    for i, node in enumerate(g.node):
        node.name = f"{NASTY[i % len(NASTY)]} node {i}"
        node.input[:] = [new(n) for n in node.input]
        node.output[:] = [new(n) for n in node.output]
    return m, g.input[0].name, g.output[0].name


def test_names_cannot_break_the_generated_code(gcc, digits_test, tmp_path):
    model, in_name, out_name = _rename_everything(onnx.load(MODELS / "lenet_digits.onnx"))
    with np.load(MODELS / "digits_calib.npz") as z:
        calib = {in_name: z["input"]}
    art = qcc.compile(model, str(tmp_path / "out"), calib=calib, bits=(4, 8), size_budget_kb=40)
    names = {getattr(op, "node_name", "") for op in art.module.walk()} - {""}
    assert any("*/" in n for n in names) and any("\n" in n for n in names)
    cm = check_c_against_interpreter(art.module, {in_name: digits_test["input"][:5]}, tmp_path / "c")
    meta = io_meta(cm.files)
    assert [d["name"] for d in meta["inputs"]] == [in_name]
    assert [d["name"] for d in meta["outputs"]] == [out_name]
    for text in cm.files.values():
        assert text.isascii()
        for name in names | {in_name, out_name}:
            if "*/" in name or "\n" in name or not name.isascii():
                assert name not in text  # only the escaped form appears, inside comments


# ------------------------------------------------------------------ single ops


def QP(bits=8, scale=0.05, zp=0, axis=None) -> nx.QParams:
    if axis is None:
        return nx.QParams(bits, True, (float(scale),), (int(zp),))
    return nx.QParams(bits, True, tuple(float(s) for s in scale), tuple(int(z) for z in zp), axis)


def qconst(values, qp: nx.QParams) -> q.ConstantOp:
    return q.ConstantOp.from_values(np.asarray(values), qp)


def op_of(cls, operands, result_type, **attrs):
    return cls(operands, [result_type], {k: py_attr(v) for k, v in attrs.items()})


class Case:
    """One op under test: its quantized inputs and a function building it (plus
    its constants) from the quantized input values."""

    def __init__(self, name, inputs, make):
        self.name, self.inputs, self.make = name, inputs, make


def module_of(cases: list[Case]) -> ModuleOp:
    """@main with one float input per case input, each quantized, each case's op
    dequantized into its own output."""
    arg_types = [TensorType(F32, shape) for c in cases for _, shape in c.inputs]
    block = Block(arg_types=arg_types)
    ops, outs, k = [], [], 0
    for c in cases:
        qvals = []
        for qp, shape in c.inputs:
            qop = q.QuantizeOp([block.args[k]], [q.qtensor(qp, shape)])
            ops.append(qop)
            qvals.append(qop.results[0])
            k += 1
        made = c.make(qvals)
        ops += made
        y = made[-1].results[0]
        d = q.DequantizeOp([y], [TensorType(F32, y.type.get_shape())])
        ops.append(d)
        outs.append(d.results[0])
    ops.append(func.ReturnOp(*outs))
    block.add_ops(ops)
    fn = func.FuncOp("main", (arg_types, [o.type for o in outs]), Region(block))
    module = ModuleOp([fn])
    module.verify()
    return module


def random_inputs(cases: list[Case], n: int, rng) -> dict[str, np.ndarray]:
    """Float inputs that quantize to uniformly random codes over each input's whole range."""
    feeds, k = {}, 0
    for c in cases:
        for qp, shape in c.inputs:
            per_sample = tuple(shape[1:]) if shape[0] == 1 else tuple(shape)
            codes = rng.integers(qp.qmin, qp.qmax + 1, size=(n, *per_sample))
            x = nx.dequantize(codes, qp)
            assert np.array_equal(nx.quantize(x, qp), codes)
            feeds[f"input{k}"] = x
            k += 1
    return feeds


def run_cases(cases: list[Case], work, seed: int = 0, n: int = 3) -> None:
    module = module_of(cases)
    feeds = random_inputs(cases, n, np.random.default_rng(seed))
    try:
        check_c_against_interpreter(module, feeds, work)
    except AssertionError as e:
        import re

        m = re.search(r"output(?: codes)? 'output(\d+)'", str(e))
        who = cases[int(m.group(1))].name if m else "?"
        raise AssertionError(f"case {who}: {e}") from None


def conv_case(rng, i: int) -> Case:
    nd = 1 + (i % 4 != 0)
    if i % 3 == 0:  # depthwise, sometimes with a channel multiplier
        group, cg, mg = int(rng.integers(1, 5)), 1, int(rng.integers(1, 3))
    else:
        group, cg, mg = int(rng.integers(1, 3)), int(rng.integers(1, 9)), int(rng.integers(1, 5))
    ks = [int(rng.integers(1, 4)) for _ in range(nd)]
    strides = [int(rng.integers(1, 3)) for _ in range(nd)]
    dils = [int(rng.integers(1, 3)) for _ in range(nd)]
    sp = [max(int(rng.integers(3, 10)), (k - 1) * d + 1) for k, d in zip(ks, dils)]
    auto_pad = ["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"][i % 5]
    pads = [int(rng.integers(0, 3)) for _ in range(2 * nd)]
    x_bits, y_bits = [(8, 8), (4, 8), (16, 16), (8, 4), (16, 8)][i % 5]
    w_bits = [2, 4, 8, 16][i % 4]
    C, M = group * cg, group * mg
    x_qp = QP(x_bits, 0.05, int(rng.integers(*nx.qrange(x_bits))) // 3 if x_bits != 16 else 0)
    y_qp = QP(y_bits, 0.2, int(rng.integers(*nx.qrange(y_bits))) // 3 if y_bits != 16 else 0)
    wmax = nx.qrange(w_bits, narrow=True)[1]
    w = rng.integers(-wmax, wmax + 1, size=(M, cg, *ks))
    per_channel = i % 2 == 0
    sw = rng.uniform(0.002, 0.05, size=M) if per_channel else np.full(M, rng.uniform(0.002, 0.05))
    w_qp = QP(w_bits, sw, [0] * M, axis=0) if per_channel else QP(w_bits, sw[0])
    b = rng.integers(-5000, 5000, size=M)
    b_qp = QP(32, 0.05 * sw, [0] * M, axis=0) if per_channel else QP(32, 0.05 * sw[0])
    attrs = dict(strides=strides, dilations=dils, group=group, kernel_shape=ks)
    if auto_pad == "NOTSET":
        attrs["pads"] = pads
    else:
        attrs["auto_pad"] = auto_pad
    if i % 7 == 3:
        attrs.update(act_min=y_qp.qmin // 2, act_max=y_qp.qmax // 3)
    from qcc.float_kernels import _conv_geometry

    st, dl, pb, pe = _conv_geometry(attrs, np.zeros((1, C, *sp)), w)
    out = [(sp[d] + pb[d] + pe[d] - ((ks[d] - 1) * dl[d] + 1)) // st[d] + 1 for d in range(nd)]

    def make(qv):
        cw, cb = qconst(w, w_qp), qconst(b, b_qp)
        y_t = q.qtensor(y_qp, (1, M, *out))
        probe = op_of(q.ConvOp, [qv[0], cw.results[0], cb.results[0]], y_t, acc_bits=64, **attrs)
        acc = max(nx.accumulator_bits(q.accumulator_bound(probe)), 64 if i % 6 == 5 else 32)
        return [cw, cb, op_of(q.ConvOp, [qv[0], cw.results[0], cb.results[0]], y_t, acc_bits=acc, **attrs)]

    return Case(f"conv{i} {nd}-D g={group} cg={cg} mg={mg} k={ks} s={strides} d={dils} {auto_pad} "
                f"x{x_bits} w{w_bits} y{y_bits}", [(x_qp, (1, C, *sp))], make)


def fc_case(rng, i: int) -> Case:
    k = [1, 7, 16, 33, 64, 5][i % 6]
    n = int(rng.integers(1, 12))
    lead = [(), (3,)][i % 2]
    x_bits, y_bits, w_bits = [(8, 8, 4), (16, 16, 16), (4, 8, 2), (8, 16, 8), (16, 8, 4), (8, 4, 2)][i % 6]
    x_qp = QP(x_bits, 0.03, int(rng.integers(*nx.qrange(x_bits))) // 2 if x_bits != 16 else 0)
    y_qp = QP(y_bits, 0.1, int(rng.integers(*nx.qrange(y_bits))) // 2 if y_bits != 16 else 0)
    wmax = nx.qrange(w_bits, narrow=True)[1]
    w = rng.integers(-wmax, wmax + 1, size=(n, k))
    sw = rng.uniform(0.001, 0.05, size=n)
    b = rng.integers(-(1 << 16), 1 << 16, size=n)

    def make(qv):
        cw, cb = qconst(w, QP(w_bits, sw, [0] * n, axis=0)), qconst(b, QP(32, 0.03 * sw, [0] * n, axis=0))
        y_t = q.qtensor(y_qp, (1, *lead, n))
        probe = op_of(q.FullyConnectedOp, [qv[0], cw.results[0], cb.results[0]], y_t, acc_bits=64)
        acc = max(nx.accumulator_bits(q.accumulator_bound(probe)), 64 if i % 4 == 3 else 32)
        return [cw, cb, op_of(q.FullyConnectedOp, [qv[0], cw.results[0], cb.results[0]], y_t, acc_bits=acc)]

    return Case(f"fc{i} k={k} n={n} lead={lead} x{x_bits} w{w_bits} y{y_bits}", [(x_qp, (1, *lead, k))], make)


@pytest.mark.parametrize("path", ["planes", "im2col", "taps", "gemm", "pix", "dw", "auto"])
def test_conv_and_fully_connected_paths(path, gcc, tmp_path, monkeypatch):
    if path != "auto":
        monkeypatch.setattr(ck, "conv_path", lambda g: path)
    rng = np.random.default_rng(7)
    cases = [conv_case(rng, i) for i in range(24)] + [fc_case(rng, i) for i in range(12)]
    run_cases(cases, tmp_path, seed=1)


def _simple(name, cls, x_qp, in_shape, y_qp, out_shape, **attrs) -> Case:
    return Case(name, [(x_qp, in_shape)],
                lambda qv: [op_of(cls, [qv[0]], q.qtensor(y_qp, out_shape), **attrs)])


def _pool(name, cls, qp, in_shape, **attrs) -> Case:
    from qcc.float_kernels import _pool_geometry

    out = _pool_geometry(attrs, in_shape[2:])[3]
    return _simple(name, cls, qp, in_shape, qp, (*in_shape[:2], *out), **attrs)


def _binary(name, cls, a, b, y, sa, sb, sy, **attrs) -> Case:
    return Case(name, [(a, sa), (b, sb)], lambda qv: [op_of(cls, qv, q.qtensor(y, sy), **attrs)])


def other_op_cases() -> list[Case]:
    cases = []
    a8, b8, y8 = QP(8, 0.05, -7), QP(8, 0.11, 20), QP(8, 0.09, 3)
    a16, b16, y16 = QP(16, 0.001), QP(16, 0.0007), QP(16, 0.0012)
    a4 = QP(4, 0.3, -2)
    for sa, sb in [((1, 3, 4, 4), (1, 3, 4, 4)), ((1, 3, 4, 4), (1, 3, 1, 1)), ((1, 1, 4, 1), (1, 3, 1, 5)),
                   ((1, 6), (6,))]:
        out = tuple(np.broadcast_shapes(sa, sb))
        cases.append(_binary(f"add {sa}+{sb}", q.AddOp, a8, b8, y8, sa, sb, out))
        cases.append(_binary(f"mul {sa}*{sb}", q.MulOp, a8, b8, y8, sa, sb, out))
    cases.append(_binary("add 16-bit", q.AddOp, a16, b16, y16, (1, 5, 3), (1, 5, 3), (1, 5, 3)))
    cases.append(_binary("add 4/8 relu", q.AddOp, a4, b8, y8, (1, 4, 4), (1, 4, 4), (1, 4, 4), act_min=3, act_max=90))
    cases.append(_binary("mul 16-bit", q.MulOp, a16, QP(16, 0.002), y16, (1, 2, 6), (1, 2, 1), (1, 2, 6)))
    cases.append(_binary("mul 4-bit", q.MulOp, a4, QP(4, 0.2, 1), QP(4, 0.5, -1), (1, 8), (1, 8), (1, 8)))
    for x, y in [(QP(16, 0.001), QP(8, 0.03, -5)), (QP(8, 0.05, 9), QP(4, 0.4, 1)), (QP(8, 0.05, 9), QP(16, 0.0001)),
                 (QP(8, 0.05, 9), QP(8, 0.002, -100))]:
        cases.append(_simple(f"requantize {x.bits}->{y.bits}", q.RequantizeOp, x, (1, 3, 5), y, (1, 3, 5)))
    # concat: same parameters (copied), different (requantized), axes 1 and 2
    c1, c2, c3 = QP(8, 0.05, 2), QP(8, 0.05, 2), QP(8, 0.13, -40)
    for axis in (1, 2):
        shapes = [(1, 2, 3), (1, 1, 3), (1, 3, 3)] if axis == 1 else [(1, 2, 3), (1, 2, 1), (1, 2, 4)]
        out = list(shapes[0])
        out[axis] = sum(s[axis] for s in shapes)
        cases.append(Case(f"concat axis {axis}", [(c1, shapes[0]), (c2, shapes[1]), (c3, shapes[2])],
                          lambda qv, out=tuple(out), axis=axis: [op_of(q.ConcatOp, qv, q.qtensor(c1, out), axis=axis)]))
    for bits in (4, 8, 16):
        qp = QP(bits, 0.1, 1 if bits != 16 else 0)
        cases.append(_pool(f"max_pool 3/2 pad 1 i{bits}", q.MaxPoolOp, qp, (1, 2, 7, 7),
                           kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    p8 = QP(8, 0.1, -9)
    cases.append(_pool("max_pool dilated", q.MaxPoolOp, p8, (1, 2, 7, 6), kernel_shape=[3, 2],
                       dilations=[2, 1], strides=[2, 1]))
    cases.append(_pool("max_pool ceil_mode", q.MaxPoolOp, p8, (1, 2, 6, 7), kernel_shape=[2, 2],
                       strides=[2, 2], pads=[0, 0, 1, 0], ceil_mode=1))
    cases.append(_pool("max_pool SAME_UPPER", q.MaxPoolOp, p8, (1, 2, 5, 5), kernel_shape=[2, 2],
                       strides=[2, 2], auto_pad="SAME_UPPER"))
    cases.append(_pool("max_pool SAME_LOWER", q.MaxPoolOp, p8, (1, 2, 5, 6), kernel_shape=[3, 2],
                       strides=[1, 2], auto_pad="SAME_LOWER"))
    cases.append(_pool("max_pool 1-D", q.MaxPoolOp, p8, (1, 3, 9), kernel_shape=[3], strides=[2]))
    for inc in (0, 1):
        cases.append(_pool(f"avg_pool pads count_include_pad={inc}", q.AvgPoolOp, p8, (1, 2, 6, 7),
                           kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 0, 1], count_include_pad=inc))
        cases.append(_pool(f"avg_pool 1-D count_include_pad={inc}", q.AvgPoolOp, QP(16, 0.01), (1, 2, 8),
                           kernel_shape=[2], strides=[2], pads=[1, 1], count_include_pad=inc))
    cases.append(_pool("avg_pool 4-bit", q.AvgPoolOp, a4, (1, 3, 4, 4), kernel_shape=[2, 2], strides=[2, 2]))
    cases.append(_pool("avg_pool VALID", q.AvgPoolOp, p8, (1, 3, 5, 5), kernel_shape=[2, 3], strides=[1, 2],
                       auto_pad="VALID"))
    for x, y, sp in [(QP(8, 0.05, -3), QP(8, 0.01, 5), (5, 5)), (QP(16, 0.001), QP(8, 0.0004, -2), (4, 4)),
                     (QP(4, 0.3, 1), QP(8, 0.02), (7,))]:
        cases.append(_simple(f"global_avg_pool i{x.bits}->i{y.bits} {sp}", q.GlobalAvgPoolOp, x, (1, 3, *sp), y,
                             (1, 3, *[1] * len(sp))))
    for bits in (4, 8, 16):
        qp = QP(bits, 0.1, 0)
        lo, hi = qp.qmin // 2, qp.qmax // 3
        cases.append(_simple(f"clamp i{bits}", q.ClampOp, qp, (1, 4, 3), qp, (1, 4, 3), act_min=lo, act_max=hi))
        cases.append(_simple(f"clamp floor only i{bits}", q.ClampOp, qp, (1, 4, 3), qp, (1, 4, 3), act_min=0))
    for xb, yb in [(8, 8), (4, 8), (8, 16), (4, 4)]:
        x, y = QP(xb, 0.1, 0), QP(yb, 0.05, 0)
        xs = nx.dequantize(np.arange(x.qmin, x.qmax + 1), x).astype(np.float64)
        table = nx.quantize(np.tanh(xs), y)
        cases.append(Case(f"lookup i{xb}->i{yb}", [(x, (1, 2, 9))],
                          lambda qv, y=y, table=table: [q.LookupOp(qv, [q.qtensor(y, (1, 2, 9))],
                                                                    {"table": py_attr(table)})]))
    for shape, pads, value in [((1, 2, 3, 3), [0, 0, 1, 2, 0, 1, 2, 0], None), ((1, 3, 4), [0, 1, 0, 0, 2, 3], 5),
                               ((2, 3), [1, 0, 0, 2], -7), ((1, 2, 2, 2), [0] * 8, None)]:
        out = tuple(s + pads[i] + pads[i + len(shape)] for i, s in enumerate(shape))
        attrs = dict(pads=pads) if value is None else dict(pads=pads, value=value)
        cases.append(_simple(f"pad {shape} {pads} {value}", q.PadOp, p8, shape, p8, out, **attrs))
    for ctm in ("half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"):
        for mode in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil"):
            for (h, w), (oh, ow) in [((3, 5), (6, 10)), ((4, 6), (2, 3)), ((5, 3), (7, 4))]:
                cases.append(_simple(f"resize {ctm} {mode} {h}x{w}->{oh}x{ow}", q.ResizeOp, p8, (1, 2, h, w), p8,
                                     (1, 2, oh, ow), coordinate_transformation_mode=ctm, nearest_mode=mode,
                                     mode="nearest"))
    for perm in ([0, 2, 1, 3], [0, 3, 1, 2], [0, 1, 2, 3], [0, 2, 3, 1]):
        shape = (1, 2, 3, 4)
        cases.append(_simple(f"transpose {perm}", q.TransposeOp, a4, shape, a4, tuple(shape[p] for p in perm),
                             perm=perm))
    cases.append(_simple("reshape", q.ReshapeOp, p8, (1, 2, 3, 4), p8, (1, 24)))
    cases.append(Case("reshape then add (view into a live buffer)", [(p8, (1, 2, 6))],
                      lambda qv: (lambda r: [r, op_of(q.AddOp, [r.results[0], r.results[0]],
                                                      q.qtensor(y8, (1, 12)))])(
                          op_of(q.ReshapeOp, [qv[0]], q.qtensor(p8, (1, 12))))))
    cases.append(Case("clamp in place after its last use", [(p8, (1, 10))],
                      lambda qv: (lambda c1: [c1, op_of(q.ClampOp, [c1.results[0]], q.qtensor(p8, (1, 10)),
                                                        act_min=-50, act_max=50)])(
                          op_of(q.ClampOp, [qv[0]], q.qtensor(p8, (1, 10)), act_min=-100, act_max=60))))
    return cases


def test_every_other_op(gcc, tmp_path):
    run_cases(other_op_cases(), tmp_path, seed=3)


def test_every_quant_op_has_a_c_kernel():
    ops = {q.QuantizeOp, q.DequantizeOp, q.RequantizeOp, q.ConvOp, q.FullyConnectedOp, q.AddOp, q.MulOp,
           q.ConcatOp, q.MaxPoolOp, q.AvgPoolOp, q.GlobalAvgPoolOp, q.ClampOp, q.LookupOp, q.PadOp, q.ResizeOp,
           q.ReshapeOp, q.TransposeOp, q.ChannelScaleOp, q.SoftmaxOp,  # these two: tests/test_fusion.py
           q.SliceOp, q.InsertSliceOp}  # these two: tests/test_patches_c.py
    assert ops <= set(ck.GENERATORS)
    assert set(q.QUANT_OPS) - ops == {q.ConstantOp}  # constants become static arrays


def test_softmax_and_unsupported_float_ops(gcc, tmp_path):
    """A float Softmax after the integer region runs in C (to float32 rounding);
    a float op without a C kernel is a clear QccError naming it."""
    qp = QP(8, 0.05, -3)
    arg_types = [TensorType(F32, (1, 10))]
    block = Block(arg_types=arg_types)
    quant = q.QuantizeOp([block.args[0]], [q.qtensor(qp, (1, 10))])
    deq = q.DequantizeOp([quant.results[0]], [TensorType(F32, (1, 10))])
    from qcc.dialects.onnx import OPS

    soft = OPS["Softmax"].create(operands=[deq.results[0]], result_types=[TensorType(F32, (1, 10))],
                                 attributes={"axis": py_attr(-1), "qcc.name": py_attr("soft\n*/max")})
    block.add_ops([quant, deq, soft, func.ReturnOp(soft.results[0])])
    module = ModuleOp([func.FuncOp("main", (arg_types, [soft.results[0].type]), Region(block))])
    module.verify()
    cm = emit_model(module)
    assert not cm.has_run_q and cm.io["libm"]
    x = {"input0": np.random.default_rng(0).normal(size=(4, 10)).astype(np.float32) * 3}
    exe = build_host(cm.files, tmp_path / "soft")
    got, _ = run_host(exe, cm.files, x)
    want = run_samples(module, x)["output0"]
    np.testing.assert_allclose(got["output0"], want, rtol=2e-6, atol=1e-7)

    erf = OPS["Erf"].create(operands=[deq.results[0]], result_types=[TensorType(F32, (1, 10))],
                            attributes={"qcc.name": py_attr("my_erf")})
    block2 = Block(arg_types=arg_types)
    quant2 = quant.clone()
    quant2.operands[0] = block2.args[0]
    deq2 = q.DequantizeOp([quant2.results[0]], [TensorType(F32, (1, 10))])
    erf.operands[0] = deq2.results[0]
    block2.add_ops([quant2, deq2, erf, func.ReturnOp(erf.results[0])])
    module2 = ModuleOp([func.FuncOp("main", (arg_types, [erf.results[0].type]), Region(block2))])
    with pytest.raises(qcc.QccError, match=r"onnx\.Erf.*my_erf.*no C implementation"):
        emit_model(module2)


def test_arena_plan_never_overlaps_live_buffers():
    from qcc.backends.c import arena

    rng = np.random.default_rng(5)
    for _ in range(50):
        bufs = []
        for i in range(int(rng.integers(1, 40))):
            s = int(rng.integers(0, 30))
            bufs.append(arena.Buffer(f"b{i}", int(rng.integers(0, 500)), s, s + int(rng.integers(0, 8))))
        size = arena.plan(bufs)
        for a, b in itertools.combinations(bufs, 2):
            if a.size and b.size and a.start <= b.end and b.start <= a.end:
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset
        assert all(b.offset % arena.ALIGN == 0 and b.offset + b.size <= size for b in bufs)
        assert size <= sum((b.size + 15) // 16 * 16 for b in bufs)


def test_makefile_builds_the_library(gcc, tmp_path, tmp_path_factory):
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("no make")
    art = compiled("lenet", "int8", tmp_path_factory)
    cm = emit_model(art.module)
    for name, text in cm.files.items():
        (tmp_path / name).write_text(text)
    r = subprocess.run(["make", "CFLAGS=" + " ".join(CFLAGS)], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "libmodel.a").exists()


def test_prelude_arithmetic_matches_numerics(gcc, tmp_path):
    """The C helpers every kernel uses, against qcc.numerics on edge and random
    values: requantize32/64 (both rounding directions, saturation, the SRDHM
    overflow case), RDBP ties, quantize ties and clamping, dequantize, unpacking."""
    import subprocess

    from qcc.backends.c.cgen import PRELUDE, flit, lit

    rng = np.random.default_rng(11)
    i32 = [nx.INT32_MIN, nx.INT32_MIN + 1, -(1 << 30), -3, -2, -1, 0, 1, 2, 3, (1 << 30), nx.INT32_MAX - 1,
           nx.INT32_MAX]
    r32 = [(a, m, s) for a in i32 + list(rng.integers(nx.INT32_MIN, nx.INT32_MAX, 60))
           for m, s in [(0, 0), (1 << 30, 0), (nx.INT32_MAX, -31), (1518500250, 1), (1073741824, 30),
                        (1395864371, -5), *[(int(rng.integers(1 << 30, 1 << 31)), int(rng.integers(-31, 31)))
                                            for _ in range(4)]]]
    r64 = [(int(a), int(rng.integers(1 << 30, 1 << 31)), int(rng.integers(-20, 8)))
           for a in [*rng.integers(-(1 << 47) + 1, 1 << 47, 200), -(1 << 47) + 1, (1 << 47) - 1, 0, -1, 1]]
    r64 += [(a, 0x7FFF0000 + d, s) for a in (12345678901, -98765) for d in (-1, 0, 1) for s in (-3, 0, 7)]
    pot = [(x, e) for x in [-7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, nx.INT32_MIN, nx.INT32_MAX]
           for e in range(0, 32)]
    quant = []
    for bits in (4, 8, 16):
        for scale in (0.1, 0.0039215686274509803, 3.0517578125e-05):
            lo, hi = nx.qrange(bits)
            for zp in (0, lo // 3, hi // 2):
                xs = np.concatenate([(np.arange(-8, 8) + 0.5) * scale, rng.normal(0, 30 * scale, 20),
                                     [0.0, -0.0, 1e30, -1e30, np.inf, -np.inf]]).astype(np.float32)
                quant += [(float(x), scale, zp, lo, hi, bits) for x in xs]
    packed = rng.integers(0, 256, 40).astype(np.uint8)
    lines = ["#include <stdio.h>", "#include <math.h>", PRELUDE, "int main(void) {"]
    lines += [f'printf("%lld\\n", (long long)qcc_requant32({lit(a)}, {lit(m)}, {s}));' for a, m, s in r32]
    lines += [f'printf("%lld\\n", (long long)qcc_requant64({lit(a)}, {lit(m)}, {s}));' for a, m, s in r64]
    lines += ['printf("%lld\\n", (long long)qcc_srdhm(INT32_MIN, INT32_MIN));']
    lines += [f'printf("%lld\\n", (long long)qcc_rdbp({lit(x)}, {e}));' for x, e in pot]
    fx = [flit(x) if np.isfinite(x) else ("INFINITY" if x > 0 else "-INFINITY") for x, *_ in quant]
    lines += [f'printf("%d\\n", qcc_quantize((float){f}, {flit(s)}, {lit(z)}, {lit(lo)}, {lit(hi)}));'
              for f, (x, s, z, lo, hi, _) in zip(fx, quant)]
    lines += [f'printf("%a\\n", (double)qcc_dequantize({lit(c)}, {lit(z)}, {flit(s)}));'
              for c, z, s in [(-128, -5, 0.1), (127, 3, 0.0039215686274509803), (32767, 0, 3.0517578125e-05)]]
    lines.append("static const uint8_t P[] = {" + ", ".join(map(str, packed)) + "};")
    lines += [f'printf("%d\\n", qcc_unpack4(P, {i}));' for i in range(80)]
    lines += [f'printf("%d\\n", qcc_unpack2(P, {i}));' for i in range(160)]
    lines += ["return 0;", "}"]
    (tmp_path / "t.c").write_text("\n".join(lines))
    r = subprocess.run([gcc, *CFLAGS, "-Wno-unused-function", "t.c", "-o", "t"], cwd=tmp_path, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([str(tmp_path / "t")], capture_output=True, text=True, check=True).stdout.split()
    want = [int(nx.requantize32(a, m, s)) for a, m, s in r32] + [int(nx.requantize64(a, m, s)) for a, m, s in r64]
    want += [int(nx.saturating_rounding_doubling_high_mul(nx.INT32_MIN, nx.INT32_MIN))]
    want += [int(nx.rounding_divide_by_pot(x, e)) for x, e in pot]
    want += [int(nx.quantize(np.float32(x), nx.QParams(b, True, (s,), (z,)))) for x, s, z, lo, hi, b in quant]
    got_i = [int(v) for v in out[:len(want)]]
    for k, (g_, w_) in enumerate(zip(got_i, want)):
        assert g_ == w_, f"check {k}: C {g_} vs numerics {w_}"
    deq = [float.fromhex(v) for v in out[len(want):len(want) + 3]]
    assert deq == [float(nx.dequantize(np.array(c), nx.QParams(b, True, (s,), (z,))))
                   for c, z, s, b in [(-128, -5, 0.1, 8), (127, 3, 0.0039215686274509803, 8),
                                      (32767, 0, 3.0517578125e-05, 16)]]
    rest = [int(v) for v in out[len(want) + 3:]]
    assert rest == [int(v) for v in nx.unpack(packed, 4, 80)] + [int(v) for v in nx.unpack(packed, 2, 160)]


def test_float_ops_stay_exact_when_the_build_fuses_multiply_adds(gcc, digits_test, tmp_path_factory):
    """HardSwish/HardSigmoid left float (16-bit activations) round like numpy even in
    GNU mode with FMA contraction on, where gcc would fuse x * a + b."""
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the FMA flag used here is x86-specific")
    art = compiled("mbv3", "mixed-2-16", tmp_path_factory)
    assert any(op.name in ("onnx.HardSwish", "onnx.HardSigmoid") for op in art.module.walk())
    check_c_against_interpreter(art.module, {"input": digits_test["input"][:N_SAMPLES]},
                                tmp_path_factory.mktemp("c_fma"),
                                cflags=("-std=gnu11", "-O2", "-mfma", "-ffp-contract=fast", "-Wall", "-Werror"))


def test_per_channel_edges_and_constant_outputs(gcc, tmp_path):
    """quantize/dequantize with per-channel parameters, and a packed 4-bit constant
    read as data (dequantized straight into an output): the float-only entry point."""
    xq = QP(8, [0.05, 0.2, 0.013], [3, -7, 0], axis=1)
    wq = QP(4, [0.5, 0.25], [0, 0], axis=0)
    arg_types = [TensorType(F32, (1, 3, 4))]
    block = Block(arg_types=arg_types)
    quant = q.QuantizeOp([block.args[0]], [q.qtensor(xq, (1, 3, 4))])
    deq = q.DequantizeOp([quant.results[0]], [TensorType(F32, (1, 3, 4))])
    w = qconst(np.arange(-7, 8)[:10].reshape(2, 5), wq)
    wdeq = q.DequantizeOp([w.results[0]], [TensorType(F32, (2, 5))])
    block.add_ops([quant, deq, w, wdeq, func.ReturnOp(deq.results[0], wdeq.results[0])])
    module = ModuleOp([func.FuncOp("main", (arg_types, [deq.results[0].type, wdeq.results[0].type]),
                                   Region(block))])
    module.verify()
    x = {"input0": (np.random.default_rng(4).normal(size=(6, 3, 4)) * 2).astype(np.float32)}
    cm = check_c_against_interpreter(module, x, tmp_path)
    assert not cm.has_run_q
