"""The LLVM backend (qcc.backends.llvm) against the integer interpreter, bit for bit.

The loop-level stage (lower-to-loops) and the llvm conversions run on every
committed digit model at int8 and mixed 4/8 bits; the result runs in-process
(llvmlite MCJIT) through both entry points, `qcc_model_run` (float32, compared
bit for bit with the interpreter) and `qcc_model_run_q` (the output codes); one
model also against the C backend's executable. Every quant op runs as a small
module with random full-range codes (the C backend's cases), and hypothesis
draws random small graphs (conv / depthwise / fully connected / add / concat /
pools / lookups, widths 2 to 16). Objects are built for every target triple;
where the toolchains and qemu exist they are linked with the C backend's harness
and run under qemu-user (aarch64, rv64) and bare-metal qemu-system (Cortex-M4,
rv32imac). model.ll must parse with llvmlite and compile with clang 14.

Without a toolchain a test skips, except under CI=true, where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xdsl.dialects import func
from xdsl.dialects.builtin import Float32Type, ModuleOp, TensorType
from xdsl.ir import Block, Region

import qcc
from conftest import IN_CI, MODELS
from qcc import numerics as nx
from qcc.backends.llvm import TARGETS, JitModel, emit_llvm, object_code
from qcc.dialects import quant as q
from qcc.dialects.onnx import OPS, py_attr
from qcc.errors import QccError
from qcc.interpreter import run_samples
from test_c_backend import (QP, assert_bits_equal, conv_case, fc_case, interpreter_codes, module_of, op_of,
                            other_op_cases, qconst, random_inputs)

F32 = Float32Type()
N_SAMPLES = 16
BUDGET_4_8 = {"lenet": 40, "resnet": 120, "mbv3": 55}  # KB, as the C backend's tests
CONFIGS = {"int8": lambda m: dict(bits=(8,)), "int4-8": lambda m: dict(bits=(4, 8), size_budget_kb=BUDGET_4_8[m])}
_ARTIFACTS: dict = {}


def compiled(model: str, config: str, tmp_path_factory):
    key = (model, config)
    if key not in _ARTIFACTS:
        with np.load(MODELS / "digits_calib.npz") as z:
            calib = {"input": z["input"]}
        out = tmp_path_factory.mktemp(f"llvm_{model}_{config}")
        _ARTIFACTS[key] = qcc.compile(MODELS / f"{model}_digits.onnx", str(out), calib=calib, force=True,
                                      quiet=True, emit="none", **CONFIGS[config](model))
    return _ARTIFACTS[key]


def need(tool: str, why: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if IN_CI:
            pytest.fail(f"CI=true but {tool} is not on PATH: {why}")
        pytest.skip(f"{tool} is not on PATH: {why}")
    return path


def check_jit(module: ModuleOp, float_inputs: dict, what: str = "") -> JitModel:
    """Both entry points of the JIT-compiled module against the interpreter."""
    jit = JitModel(emit_llvm(module))
    want = run_samples(module, float_inputs)
    got = jit.run(float_inputs)
    for name in want:
        assert_bits_equal(got[name], want[name], f"{what} float output {name!r}")
    if jit.has_run_q:
        codes_in = {}
        for d in jit.meta["inputs"]:
            qp = nx.QParams(d["bits"], True, (d["scale"],), (d["zero_point"],))
            codes_in[d["name"]] = nx.quantize(np.asarray(float_inputs[d["name"]], np.float32), qp)
        want_q = interpreter_codes(module, float_inputs)
        got_q = jit.run(codes_in, codes=True)
        for j, d in enumerate(jit.meta["outputs"]):
            assert_bits_equal(got_q[d["name"]], want_q[j], f"{what} output codes {d['name']!r}")
    return jit


# ------------------------------------------------------------------ whole models


@pytest.mark.parametrize("model", ["lenet", "resnet", "mbv3"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_model_jit_matches_interpreter_bit_for_bit(model, config, digits_test, tmp_path_factory):
    art = compiled(model, config, tmp_path_factory)
    if config == "int4-8":
        widths = {op.attr("qcc.w_bits") for op in art.module.walk() if isinstance(op, (q.ConvOp, q.FullyConnectedOp))}
        assert 4 in widths, "the budget must force some 4-bit weights"
    check_jit(art.module, {"input": digits_test["input"][:N_SAMPLES]}, f"{model} {config}")


def test_model_matches_the_c_backend(digits_test, tmp_path_factory, tmp_path):
    from qcc.backends.c import emit_model
    from qcc.backends.c.run import build_host, compiler, run_host

    if compiler() is None:
        if IN_CI:
            pytest.fail("CI=true but no host C compiler")
        pytest.skip("no host C compiler for the C backend")
    module = compiled("mbv3", "int4-8", tmp_path_factory).module
    xs = {"input": digits_test["input"][:8]}
    cm = emit_model(module)
    c_out, _ = run_host(build_host(cm.files, tmp_path / "c"), cm.files, xs)
    jit_out = JitModel(emit_llvm(module)).run(xs)
    assert_bits_equal(jit_out["logits"], c_out["logits"], "JIT vs C backend")


def test_compile_emits_llvm_and_objects(tmp_path, digits_test):
    with np.load(MODELS / "digits_calib.npz") as z:
        calib = {"input": z["input"][:30]}
    art = qcc.compile(MODELS / "lenet_digits.onnx", str(tmp_path / "ll"), calib=calib, bits=(8,), emit="llvm",
                      quiet=True)
    files = set(os.listdir(tmp_path / "ll"))
    assert {"model.ll", "model.h", "model.mlir", "report.json"} <= files and "model.c" not in files
    text = (tmp_path / "ll" / "model.ll").read_text()
    assert "define i32 @\"qcc_model_run\"" in text and "define i32 @\"qcc_model_run_q\"" in text
    assert "define internal void @\"qcc_body\"" in text
    totals = art.report["totals"]
    assert art.report["code"]["language"] == "llvm" and totals["arena_bytes"] > 0
    # the arena holds the input and output codes (both entry points share it), nothing lives outside
    assert totals["sram_peak_bytes"] == totals["arena_bytes"] >= totals["sram_peak_bytes_excl_input"]
    assert totals["naive_activation_bytes"] > totals["arena_bytes"]
    from qcc.driver import run_out_dir

    xs = {"input": digits_test["input"][:5]}
    got = run_out_dir(str(tmp_path / "ll"), xs)  # `qcc run OUT/`: model.ll in the host JIT
    assert_bits_equal(got["logits"], run_samples(art.module, xs)["logits"], "qcc run of model.ll")
    art = qcc.compile(MODELS / "lenet_digits.onnx", str(tmp_path / "o"), calib=calib, bits=(8,), emit="obj",
                      target="cortex-m4", quiet=True)
    obj = (tmp_path / "o" / "model.o").read_bytes()
    assert obj[:4] == b"\x7fELF" and int.from_bytes(obj[18:20], "little") == 40  # EM_ARM


@pytest.fixture(scope="module")
def lenet_q(tmp_path_factory):
    return compiled("lenet", "int8", tmp_path_factory).module


EM = {"host": None, "cortex-m4": 40, "cortex-m7": 40, "rv32imac": 243, "cortex-a53": 183, "rv64gc": 243}


@pytest.mark.parametrize("target", list(TARGETS))
def test_objects_for_every_target(target, lenet_q):
    obj = object_code(emit_llvm(lenet_q, target))
    assert obj[:4] == b"\x7fELF"
    if EM[target] is not None:
        assert int.from_bytes(obj[18:20], "little") == EM[target]
        assert obj[4] == (1 if TARGETS[target].index_bits == 32 else 2)  # ELFCLASS32 / 64
    for sym in (b"qcc_model_run\0", b"qcc_model_run_q\0"):
        assert sym in obj


def test_model_ll_parses_and_clang14_compiles_it(lenet_q, tmp_path):
    import llvmlite.binding as llvm

    text = emit_llvm(lenet_q).files["model.ll"]
    llvm.parse_assembly(text).verify()
    clang = need("clang-14", "model.ll must compile with clang 14")
    (tmp_path / "model.ll").write_text(text)
    # LLVM 14 reads opaque pointers (`ptr`) only in its (experimental) opaque-pointer
    # mode, whose loop vectoriser crashes at -O2; qcc's own objects come from llvmlite's LLVM
    for opt in ("-O0", "-O1"):
        r = subprocess.run([clang, "-mllvm", "-opaque-pointers", opt, "-c", "model.ll", "-o", "model.o"],
                           cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        assert (tmp_path / "model.o").read_bytes()[:4] == b"\x7fELF"


@pytest.mark.parametrize("target", ["cortex-a53", "rv64gc", "cortex-m4", "rv32imac"])
def test_linked_objects_run_bit_exact_under_qemu(target, lenet_q, digits_test, tmp_path):
    from qcc.backends.c.targets import toolchain_missing
    from qcc.backends.llvm.run import build_and_run

    why = toolchain_missing(target)
    if why:
        if IN_CI:
            pytest.fail(f"CI=true: {why}")
        pytest.skip(why)
    xs = {"input": digits_test["input"][:3]}
    got, info = build_and_run(emit_llvm(lenet_q, target), xs, tmp_path)
    assert_bits_equal(got["logits"], run_samples(lenet_q, xs)["logits"], f"model.o on {target}")
    if TARGETS[target].index_bits == 32:
        assert info["instructions"] and info["instructions"] > 0


# ------------------------------------------------------------------ single ops


def test_every_quant_op(tmp_path):
    cases = other_op_cases()
    module = module_of(cases)
    check_jit(module, random_inputs(cases, 3, np.random.default_rng(3)), "other ops")


def test_conv_and_fully_connected():
    rng = np.random.default_rng(7)
    cases = [conv_case(rng, i) for i in range(24)] + [fc_case(rng, i) for i in range(12)]
    check_jit(module_of(cases), random_inputs(cases, 3, np.random.default_rng(1)), "conv/fc")


def dsp_cases(rng) -> list:
    """int8 1x1 convolutions and fully-connected layers: the shapes the Cortex-M DSP
    kernels (SXTB16/SMLAD) take, with tails in every dimension (input channels or
    K not a multiple of 4, pixels not a multiple of 4, odd output channels),
    per-tensor and per-channel multipliers, some above 1 (the saturating left
    shift), clamped activations."""
    from test_c_backend import Case

    cases = []
    for i, (c, hw, m) in enumerate([(4, (2, 2), 2), (5, (3, 3), 3), (8, (2, 3), 1), (9, (4, 5), 5), (32, (4, 4), 4),
                                    (7, (1, 5), 2)]):
        x_qp, y_qp = QP(8, 0.05, int(rng.integers(-40, 40))), QP(8, [0.2, 0.002][i % 2], int(rng.integers(-40, 40)))
        w = rng.integers(-127, 128, size=(m, c, 1, 1))
        sw = rng.uniform(0.002, 0.05, size=m) if i % 3 else np.full(m, 0.01)
        b = rng.integers(-5000, 5000, size=m)
        extra = dict(act_min=-50, act_max=90) if i == 4 else {}

        def make(qv, w=w, sw=sw, b=b, m=m, hw=hw, y_qp=y_qp, extra=extra):
            cw, cb = qconst(w, QP(8, sw, [0] * m, axis=0)), qconst(b, QP(32, 0.05 * sw, [0] * m, axis=0))
            return [cw, cb, op_of(q.ConvOp, [qv[0], cw.results[0], cb.results[0]], q.qtensor(y_qp, (1, m, *hw)),
                                  acc_bits=32, kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0], group=1, **extra)]

        cases.append(Case(f"pw{i} c={c} hw={hw} m={m}", [(x_qp, (1, c, *hw))], make))
    for i, (k, n, lead) in enumerate([(4, 1, ()), (7, 3, (3,)), (16, 5, ()), (33, 4, (2,)), (64, 9, ())]):
        x_qp, y_qp = QP(8, 0.03, int(rng.integers(-40, 40))), QP(8, [0.1, 0.001][i % 2], int(rng.integers(-40, 40)))
        w = rng.integers(-127, 128, size=(n, k))
        sw = rng.uniform(0.001, 0.05, size=n)
        b = rng.integers(-(1 << 16), 1 << 16, size=n)

        def make(qv, w=w, sw=sw, b=b, n=n, lead=lead, y_qp=y_qp):
            cw, cb = qconst(w, QP(8, sw, [0] * n, axis=0)), qconst(b, QP(32, 0.03 * sw, [0] * n, axis=0))
            return [cw, cb, op_of(q.FullyConnectedOp, [qv[0], cw.results[0], cb.results[0]],
                                  q.qtensor(y_qp, (1, *lead, n)), acc_bits=32)]

        cases.append(Case(f"fc{i} k={k} n={n} lead={lead}", [(x_qp, (1, *lead, k))], make))
    return cases


def test_dsp_shapes_jit():
    cases = dsp_cases(np.random.default_rng(11))
    check_jit(module_of(cases), random_inputs(cases, 3, np.random.default_rng(12)), "dsp shapes (host)")


def test_dsp_kernels_bit_exact_on_cortex_m4(tmp_path):
    """The SXTB16/SMLAD dot products (1x1 convolution, fully connected) of the
    Cortex-M4 object against the interpreter, under qemu-system."""
    from qcc.backends.c.targets import toolchain_missing
    from qcc.backends.llvm.run import build_and_run

    why = toolchain_missing("cortex-m4")
    if why:
        if IN_CI:
            pytest.fail(f"CI=true: {why}")
        pytest.skip(why)
    cases = dsp_cases(np.random.default_rng(11))
    module = module_of(cases)
    lm = emit_llvm(module, "cortex-m4")
    assert "llvm.arm.smlad" in lm.files["model.ll"] and "llvm.arm.sxtb16" in lm.files["model.ll"]
    xs = random_inputs(cases, 2, np.random.default_rng(13))
    got, _ = build_and_run(lm, xs, tmp_path)
    want = run_samples(module, xs)
    for name in want:
        assert_bits_equal(got[name], want[name], f"cortex-m4 DSP kernels, output {name!r}")


def test_channel_scale_and_integer_softmax():
    from test_fusion import CHANNEL_SCALE_CASES, SOFTMAX_CASES

    cases = [*CHANNEL_SCALE_CASES, *SOFTMAX_CASES]
    check_jit(module_of(cases), random_inputs(cases, 4, np.random.default_rng(5)), "channel_scale/softmax")


def test_slices_of_patch_based_inference():
    if not hasattr(q, "SliceOp"):
        pytest.skip("this quant dialect has no quant.slice")
    from test_c_backend import Case

    p8 = QP(8, 0.1, -9)
    t = (p8, (1, 2, 3, 4))
    cases = [Case("slice", [(p8, (1, 3, 6, 5))], lambda qv: [
                 op_of(q.SliceOp, qv, q.qtensor(p8, (1, 2, 3, 4)), offsets=[0, 1, 2, 1])]),
             Case("insert into dest", [(p8, (1, 3, 6, 5)), t], lambda qv: [
                 op_of(q.InsertSliceOp, qv, q.qtensor(p8, (1, 3, 6, 5)), offsets=[0, 1, 2, 1])]),
             Case("insert into zero points", [t], lambda qv: [
                 op_of(q.InsertSliceOp, qv, q.qtensor(p8, (1, 3, 6, 5)), offsets=[0, 0, 3, 0])])]
    check_jit(module_of(cases), random_inputs(cases, 3, np.random.default_rng(2)), "slices")


def test_every_quant_op_has_a_loop_lowering():
    from qcc.passes.lower_to_loops import LOWERINGS

    assert set(q.QUANT_OPS) - set(LOWERINGS) == {q.ConstantOp}  # constants become globals


def test_softmax_runs_and_unlowered_ops_are_named():
    qp = QP(8, 0.05, -3)
    arg_types = [TensorType(F32, (1, 10))]

    def build(op_type: str) -> ModuleOp:
        block = Block(arg_types=arg_types)
        quant = q.QuantizeOp([block.args[0]], [q.qtensor(qp, (1, 10))])
        deq = q.DequantizeOp([quant.results[0]], [TensorType(F32, (1, 10))])
        attrs = {"qcc.name": py_attr("my\n*/op")} | ({"axis": py_attr(-1)} if op_type == "Softmax" else {})
        op = OPS[op_type].create(operands=[deq.results[0]], result_types=[TensorType(F32, (1, 10))],
                                 attributes=attrs)
        block.add_ops([quant, deq, op, func.ReturnOp(op.results[0])])
        module = ModuleOp([func.FuncOp("main", (arg_types, [op.results[0].type]), Region(block))])
        module.verify()
        return module

    module = build("Softmax")
    x = {"input0": np.random.default_rng(0).normal(size=(4, 10)).astype(np.float32) * 3}
    jit = JitModel(emit_llvm(module))
    assert not jit.has_run_q
    np.testing.assert_allclose(jit.run(x)["output0"], run_samples(module, x)["output0"], rtol=2e-6, atol=1e-7)
    with pytest.raises(QccError, match=r"onnx\.Erf .*my\\n\*/op.*no loop-level lowering"):
        emit_llvm(build("Erf"))


def test_legality_check_names_what_was_not_lowered():
    from qcc.ir import qcc_context
    from qcc.passes.check_loop_legality import CheckLoopLegalityPass

    cases = other_op_cases()[:2]
    module = module_of(cases)
    with pytest.raises(QccError, match=r"ops not lowered to the loops stage: .*quant\.add.*quant\.quantize"):
        CheckLoopLegalityPass().apply(qcc_context(), module)


# ------------------------------------------------------------ random graphs


def _conv_layer(rng, x_val, x_qp, shape, depthwise: bool, w_bits: int, y_qp):
    _, c, h, w = shape
    k = int(rng.integers(1, min(3, h, w) + 1))  # the kernel fits: no empty output
    s = int(rng.integers(1, 3))
    p = int(rng.integers(0, k))
    m = c if depthwise else int(rng.integers(1, 6))
    g = c if depthwise else 1
    wmax = nx.qrange(w_bits, narrow=True)[1]
    wv = rng.integers(-wmax, wmax + 1, size=(m, c // g, k, k))
    sw = rng.uniform(0.005, 0.05, size=m)
    b = rng.integers(-3000, 3000, size=m)
    cw = qconst(wv, QP(w_bits, sw, [0] * m, axis=0))
    cb = qconst(b, QP(32, x_qp.scale[0] * sw, [0] * m, axis=0))
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    attrs = dict(kernel_shape=[k, k], strides=[s, s], pads=[p] * 4, group=g)
    y_t = q.qtensor(y_qp, (1, m, oh, ow))
    probe = op_of(q.ConvOp, [x_val, cw.results[0], cb.results[0]], y_t, acc_bits=64, **attrs)
    acc = nx.accumulator_bits(q.accumulator_bound(probe))
    conv = op_of(q.ConvOp, [x_val, cw.results[0], cb.results[0]], y_t, acc_bits=acc, **attrs)
    return [cw, cb, conv], (1, m, oh, ow)


@st.composite
def random_graphs(draw):
    """A chain of 2-5 layers on one image: conv / depthwise / pools / lookup /
    clamp / residual add / concat / fully connected, random widths and parameters."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    bits = draw(st.sampled_from([4, 8, 16]))
    x_qp = QP(bits, 0.05, 0 if bits == 16 else int(rng.integers(*nx.qrange(bits))) // 3)
    shape = (1, draw(st.integers(1, 4)), draw(st.integers(3, 9)), draw(st.integers(3, 9)))
    kinds = draw(st.lists(st.sampled_from(["conv", "depthwise", "max_pool", "avg_pool", "lookup", "clamp", "add",
                                           "concat", "gap_fc"]), min_size=2, max_size=5))
    return rng, x_qp, shape, kinds


def build_graph(rng, x_qp, shape, kinds) -> tuple[ModuleOp, list[str]]:
    arg_types = [TensorType(F32, shape)]
    block = Block(arg_types=arg_types)
    ops = [q.QuantizeOp([block.args[0]], [q.qtensor(x_qp, shape)])]
    val, qp, shp, used = ops[0].results[0], x_qp, shape, []
    for kind in kinds:
        y_bits = int(rng.choice([4, 8, 16]))
        y_qp = QP(y_bits, float(rng.uniform(0.02, 0.3)), 0 if y_bits == 16 else int(rng.integers(-3, 3)))
        if kind in ("conv", "depthwise"):
            new, shp2 = _conv_layer(rng, val, qp, shp, kind == "depthwise", int(rng.choice([2, 4, 8])), y_qp)
        elif kind in ("max_pool", "avg_pool"):
            if min(shp[2:]) < 2:
                continue
            shp2 = (*shp[:2], shp[2] // 2, shp[3] // 2)
            new = [op_of(q.MaxPoolOp if kind == "max_pool" else q.AvgPoolOp, [val], q.qtensor(qp, shp2),
                         kernel_shape=[2, 2], strides=[2, 2])]
            y_qp = qp
        elif kind == "lookup":
            if qp.bits > 8:
                continue
            xs = nx.dequantize(np.arange(qp.qmin, qp.qmax + 1), qp).astype(np.float64)
            table = nx.quantize(1 / (1 + np.exp(-xs)), y_qp)
            shp2 = shp
            new = [q.LookupOp([val], [q.qtensor(y_qp, shp)], {"table": py_attr(table)})]
        elif kind == "clamp":
            shp2, y_qp = shp, qp
            new = [op_of(q.ClampOp, [val], q.qtensor(qp, shp), act_min=qp.zero_point[0], act_max=qp.qmax // 2)]
        elif kind == "add":
            shp2 = shp
            new = [op_of(q.AddOp, [val, ops[0].results[0] if shp == shape and qp.bits <= 8 and x_qp.bits <= 8
                                   else val], q.qtensor(y_qp, shp))]
            if max(y_qp.bits, qp.bits) == 16 and y_qp.bits != qp.bits:
                continue
        elif kind == "concat":  # inputs and result share one width
            y_qp = QP(qp.bits, y_qp.scale[0], 0 if qp.bits == 16 else y_qp.zero_point[0])
            shp2 = (shp[0], 2 * shp[1], *shp[2:])
            new = [op_of(q.ConcatOp, [val, val], q.qtensor(y_qp, shp2), axis=1)]
        else:  # global average pool, reshape, fully connected
            c = shp[1]
            g = op_of(q.GlobalAvgPoolOp, [val], q.qtensor(qp, (1, c, 1, 1)))
            r = op_of(q.ReshapeOp, [g.results[0]], q.qtensor(qp, (1, c)))
            n = int(rng.integers(1, 8))
            wv = rng.integers(-7, 8, size=(n, c))
            sw = rng.uniform(0.01, 0.1, size=n)
            cw = qconst(wv, QP(4, sw, [0] * n, axis=0))
            cb = qconst(rng.integers(-500, 500, size=n), QP(32, qp.scale[0] * sw, [0] * n, axis=0))
            y_t = q.qtensor(y_qp, (1, n))
            probe = op_of(q.FullyConnectedOp, [r.results[0], cw.results[0], cb.results[0]], y_t, acc_bits=64)
            fc = op_of(q.FullyConnectedOp, [r.results[0], cw.results[0], cb.results[0]], y_t,
                       acc_bits=nx.accumulator_bits(q.accumulator_bound(probe)))
            new, shp2 = [g, r, cw, cb, fc], (1, n)
            ops += new
            val, qp, shp = new[-1].results[0], y_qp, shp2
            used.append(kind)
            break
        ops += new
        val, qp, shp = new[-1].results[0], y_qp, shp2
        used.append(kind)
    d = q.DequantizeOp([val], [TensorType(F32, shp)])
    ops += [d, func.ReturnOp(d.results[0])]
    block.add_ops(ops)
    module = ModuleOp([func.FuncOp("main", (arg_types, [d.results[0].type]), Region(block))])
    module.verify()
    return module, used


@settings(max_examples=int(os.environ.get("QCC_PROPERTY_EXAMPLES", "12")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(graph=random_graphs())
def test_random_graphs_jit_bit_exact(graph):
    rng, x_qp, shape, kinds = graph
    module, used = build_graph(rng, x_qp, shape, kinds)
    codes = rng.integers(x_qp.qmin, x_qp.qmax + 1, size=(3, *shape[1:]))
    check_jit(module, {"input0": nx.dequantize(codes, x_qp)}, f"graph {used}")
