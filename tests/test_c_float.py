"""`--float` C builds (qcc.backends.c.float_ops) against the float interpreter and onnxruntime.

Every committed model, compiled with --float's pipeline and emitted as C (built with
-std=c99 -Wall -Wextra -Werror), must agree with `qcc.interpret` on the ONNX file and
with onnxruntime to max |err| <= 1e-4 * max |ref|, with the same top-1 class on every
test sample. Each float op also runs in small generated graphs with seeded random
shapes (conv pads/strides/dilations/groups/auto_pad on every code path, Gemm/MatMul
transposes and broadcasts, elementwise broadcasting, pooling windows, data movement)
against the interpreter, once more under address and undefined-behaviour sanitizers
with every buffer its own object. The command line compiles a --float OUT/ and runs it.

Without gcc the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import qcc
from conftest import MODELS, load_split, ort_run, rel_err
from qcc.backends.c import emit_model
from qcc.backends.c.run import SANITIZE, build_host, compiler, run_host
from qcc.driver import Options, build
from qcc.interpreter import run_samples

ALL_MODELS = ("mbv3_digits", "resnet_digits", "lenet_digits", "mbv3_small_digits")
N_SAMPLES = 16
MODEL_TOL = 1e-4  # the whole-model bound, relative to max |ref|
OP_TOL = 2e-5  # one op: float32 rounding of a different summation order


@pytest.fixture(scope="session")
def gcc():
    cc = compiler()
    if cc is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no gcc on PATH (or $CC): the C backend must be tested in CI")
        pytest.skip("no gcc on PATH (or $CC): the C backend tests need a host C compiler")
    return cc


def _split(model: str) -> str:
    return "digits96_test.npz" if model == "mbv3_small_digits" else "digits_test.npz"


# ------------------------------------------------------------------ whole models


@pytest.mark.parametrize("model", ALL_MODELS)
def test_model_matches_interpreter_and_onnxruntime(model, gcc, tmp_path):
    path = MODELS / f"{model}.onnx"
    x = load_split(MODELS / _split(model))[0][:N_SAMPLES]
    module, _ = build(path, Options(float_only=True, quiet=True))
    cm = emit_model(module)
    assert not cm.has_run_q and not cm.io["libm"]  # no transcendental op: no libm
    assert 0 < cm.arena_bytes < cm.naive_bytes
    text = cm.files["model.c"]
    assert "malloc" not in text and "math.h" not in text and "static const float" in text
    got = run_host(build_host(cm.files, tmp_path), cm.files, {"input": x})[0]
    want = qcc.interpret(path, {"input": x})
    peer = ort_run(path, {"input": x})
    assert list(got) == list(want) and len(peer) == len(want)
    for (name, g), w, o in zip(got.items(), want.values(), peer):
        assert g.shape == w.shape == o.shape
        assert rel_err(g, w) <= MODEL_TOL, (name, rel_err(g, w))
        assert rel_err(g, o) <= MODEL_TOL, (name, rel_err(g, o))
        assert np.array_equal(g.argmax(-1), w.argmax(-1)) and np.array_equal(g.argmax(-1), o.argmax(-1))


def test_cli_float_build_runs(gcc, tmp_path):
    """`qcc MODEL --float -o OUT` writes C that `qcc run` builds and runs."""
    out = tmp_path / "out"
    model = MODELS / "lenet_digits.onnx"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    r = subprocess.run([sys.executable, "-m", "qcc.cli", str(model), "--float", "-o", str(out), "-q"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert {"model.c", "model.h", "Makefile", "model.mlir", "report.json"} <= set(os.listdir(out))
    report = json.loads((out / "report.json").read_text())
    assert report["code"]["float"] and not report["code"]["integer_entry_point"]
    assert not any("C" in w for w in report["warnings"]), report["warnings"]
    x, _ = load_split(MODELS / "digits_test.npz")
    np.savez(tmp_path / "in.npz", input=x[:8])
    r = subprocess.run([sys.executable, "-m", "qcc.cli", "run", str(out), "--inputs", str(tmp_path / "in.npz"),
                        "--output", str(tmp_path / "res.npz")], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "res.npz") as z:
        got = {k: z[k] for k in z.files}
    want = qcc.interpret(model, {"input": x[:8]})
    assert set(got) == set(want)
    for k in want:
        assert rel_err(got[k], want[k]) <= MODEL_TOL


# ------------------------------------------------------------------ per-op graphs


class Graph:
    """One ONNX graph of independent small cases: each case reads its own inputs
    and produces its own output, so one C build covers many ops."""

    def __init__(self, opset: int = 18):
        self.nodes, self.inputs, self.outputs, self.inits = [], [], [], []
        self.feeds: dict[str, np.ndarray] = {}
        self.opset = opset
        self.rng = np.random.default_rng(0)
        self.n = 0

    def input(self, shape, lo: float = -2.0, hi: float = 2.0) -> str:
        name = f"x{len(self.inputs)}"
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
        per_sample = tuple(shape[1:]) if shape[0] == 1 else tuple(shape)  # a leading 1 is the batch
        self.feeds[name] = self.rng.uniform(lo, hi, size=(2, *per_sample)).astype(np.float32)
        return name

    def const(self, value) -> str:
        name = f"c{len(self.inits)}"
        arr = np.asarray(value)
        self.inits.append(onnx.numpy_helper.from_array(arr, name))
        return name

    def weights(self, shape) -> str:
        return self.const(self.rng.normal(size=shape).astype(np.float32))

    def op(self, op_type: str, inputs, out: bool = True, **attrs) -> str:
        self.n += 1
        name = f"y{self.n}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [name], name=f"{op_type.lower()}_{self.n}",
                                           **attrs))
        if out:
            self.outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
        return name

    def model(self) -> onnx.ModelProto:
        g = helper.make_graph(self.nodes, "ops", self.inputs, self.outputs, self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", self.opset)])
        return onnx.shape_inference.infer_shapes(m)

    def check(self, tmp_path, *, tol: float = OP_TOL, sanitize: bool = False, extra_cflags=()) -> dict:
        module = qcc.import_model(self.model())
        cm = emit_model(module, separate_buffers=sanitize)
        exe = build_host(cm.files, tmp_path, extra_cflags=(*(SANITIZE if sanitize else ()), *extra_cflags))
        got = run_host(exe, cm.files, self.feeds)[0]
        want = run_samples(module, self.feeds)
        assert list(got) == list(want)
        for name in want:
            w = np.asarray(want[name], np.float32)
            assert got[name].shape == w.shape, name
            err = np.abs(got[name].astype(np.float64) - w).max() / max(np.abs(w).max(), 1e-6)
            assert err <= tol, (name, err, self.nodes[int(name[1:]) - 1] if name[1:].isdigit() else name)
        return {"cm": cm, "got": got, "want": want}


def conv_graph(seed: int = 0) -> Graph:
    """Fixed corner cases of every conv path, plus seeded random geometries."""
    g = Graph()
    rng = np.random.default_rng(seed)

    def conv(C, M, G, hw, k, strides=None, pads=None, dil=None, auto_pad=None, bias=True):
        x = g.input((1, C, *hw))
        attrs = {"group": G}
        for key, v in (("strides", strides), ("pads", pads), ("dilations", dil), ("auto_pad", auto_pad)):
            if v is not None:
                attrs[key] = v
        ins = [x, g.weights((M, C // G, *k))] + ([g.weights((M,))] if bias else [])
        return g.op("Conv", ins, **attrs)

    conv(3, 16, 1, (12, 11), (3, 3), pads=[1, 1, 1, 1])  # regular, many positions (tiles)
    conv(5, 7, 1, (13, 9), (3, 2), strides=[2, 1], pads=[0, 1, 2, 0], dil=[2, 1])  # asymmetric pads, dilation
    conv(6, 8, 2, (9, 9), (3, 3), strides=[2, 2], pads=[1, 1, 1, 1])  # grouped
    conv(8, 8, 8, (10, 10), (3, 3), pads=[1, 1, 1, 1], bias=False)  # depthwise
    conv(6, 12, 6, (11, 9), (3, 3), strides=[2, 2], pads=[1, 0, 1, 2])  # depthwise, multiplier 2
    conv(1, 16, 1, (17, 17), (3, 3), strides=[2, 2], pads=[1, 1, 1, 1])  # one input channel, 16 outputs
    conv(9, 9, 9, (20, 20), (7, 7), pads=[3, 3, 3, 3], dil=[1, 1])  # depthwise 7x7 (49 taps)
    conv(4, 4, 4, (12, 12), (8, 8), pads=[2, 2, 2, 2])  # depthwise 8x8: the gemm path
    conv(24, 20, 1, (6, 6), (1, 1))  # pointwise
    conv(40, 10, 1, (1, 1), (1, 1))  # pointwise on one position (squeeze-excite)
    conv(16, 6, 1, (3, 3), (3, 3), pads=[1, 1, 1, 1])  # few positions, long patches
    conv(3, 5, 1, (10, 7), (3, 3), strides=[2, 2], auto_pad="SAME_UPPER")
    conv(3, 5, 1, (10, 7), (4, 4), strides=[2, 3], auto_pad="SAME_LOWER")
    conv(4, 6, 2, (9, 9), (3, 3), auto_pad="VALID")
    conv(4, 6, 1, (30,), (5,), strides=[2], pads=[2, 1])  # 1-D
    conv(2, 3, 1, (40, 40), (3, 3), pads=[1, 1, 1, 1])  # a tall band: several row blocks
    for _ in range(6):
        G = int(rng.choice([1, 2, 3]))
        C, M = G * int(rng.integers(1, 5)), G * int(rng.integers(1, 5))
        k = tuple(int(v) for v in rng.integers(1, 4, size=2))
        s = [int(v) for v in rng.integers(1, 3, size=2)]
        d = [int(v) for v in rng.integers(1, 3, size=2)]
        p = [int(v) for v in rng.integers(0, 3, size=4)]
        hw = tuple(int(v) for v in rng.integers(6, 14, size=2))
        conv(C, M, G, hw, k, strides=s, pads=p, dil=d)
    return g


def _has_avx() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return " avx " in f.read()
    except OSError:
        return False


@pytest.mark.parametrize("vectors", ["gnu", "avx", "portable"])
def test_conv_paths_match_interpreter(vectors, gcc, tmp_path):
    """Every path, with the 8-float type as two 16-byte GNU vectors (SSE), one 32-byte
    vector (AVX), and the plain C99 struct other compilers get."""
    if vectors == "avx" and not _has_avx():
        pytest.skip("this host has no AVX")
    flags = {"gnu": (), "avx": ("-mavx",), "portable": ("-DQCC_NO_VECTOR_EXT",)}[vectors]
    res = conv_graph().check(tmp_path, extra_cflags=flags)
    text = res["cm"].files["model.c"]
    assert "F8_VMADD(a, wk, xv)" in text and "W4" in text and "WT" in text  # depthwise, tiled and per-position


@pytest.mark.parametrize("graph", ["conv", "matrix", "pool"])
def test_no_out_of_bounds_access_under_sanitizers(graph, gcc, tmp_path):
    {"conv": lambda: conv_graph(seed=1), "matrix": matrix_graph, "pool": pool_graph}[graph]().check(
        tmp_path, sanitize=True)


def matrix_graph() -> Graph:
    g = Graph()
    a = g.input((1, 7))
    g.op("Gemm", [a, g.weights((5, 7)), g.weights((5,))], transB=1)
    g.op("Gemm", [a, g.weights((7, 6)), g.weights((1, 6))], alpha=0.5, beta=2.0)
    g.op("Gemm", [a, g.weights((7, 3)), g.const(np.float32(1.5))])
    g.op("Gemm", [g.input((7, 4)), g.weights((7, 9))], transA=1)  # transposed A, no C
    g.op("Gemm", [g.input((3, 4)), g.weights((4, 5)), g.weights((3, 5))])  # C per row
    g.op("Gemm", [g.input((2, 6)), g.input((5, 6)), g.weights((5,))], transB=1)  # run-time B
    g.op("MatMul", [g.input((1, 3, 4, 6)), g.weights((6, 11))])
    g.op("MatMul", [g.input((1, 5)), g.weights((5,))])  # 1-D B
    g.op("MatMul", [g.input((1, 2, 3, 4)), g.input((1, 4, 5))])  # both run-time, batch broadcast
    g.op("MatMul", [g.input((1, 4, 3)), g.input((1, 2, 1, 3, 6))])
    return g


def test_matrix_products(gcc, tmp_path):
    matrix_graph().check(tmp_path)


def test_elementwise_and_broadcasting(gcc, tmp_path):
    g = Graph()
    x = g.input((1, 3, 4, 5))
    for op_type in ("Add", "Sub", "Mul"):
        g.op(op_type, [x, g.input((1, 3, 1, 5))])
        g.op(op_type, [g.input((1, 4, 1)), g.input((1, 1, 6))])
        g.op(op_type, [x, g.weights((3, 1, 1))])
    g.op("Div", [x, g.input((1, 1, 4, 5), lo=0.5, hi=2.0)])
    g.op("Div", [g.const(np.float32(1.0)), g.input((1, 6), lo=0.5, hi=2.0)])
    g.op("Mul", [x, x])  # one buffer read twice
    g.op("Clip", [x, g.const(np.float32(-0.5)), g.const(np.float32(1.25))])
    g.op("Clip", [x, "", g.const(np.float32(6.0))])
    g.op("Clip", [x, g.const(np.float32(0.0))])
    for op_type in ("Sigmoid", "Tanh", "Exp", "Neg", "Abs", "Relu"):
        g.op(op_type, [x])
    g.op("Sqrt", [g.input((1, 7), lo=0.0, hi=9.0)])
    g.op("LeakyRelu", [x], alpha=0.1)
    g.op("HardSwish", [x])
    g.op("HardSigmoid", [x])
    g.op("Softmax", [x], axis=1)
    g.op("BatchNormalization", [x, g.weights((3,)), g.weights((3,)), g.weights((3,)),
                                g.const(np.array([0.5, 1.0, 2.0], np.float32))])
    res = g.check(tmp_path)
    assert res["cm"].io["libm"]  # expf, tanhf, sqrtf


def pool_graph() -> Graph:
    g = Graph()
    x = g.input((1, 3, 11, 10))
    g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    g.op("MaxPool", [x], kernel_shape=[2, 3], strides=[2, 2], ceil_mode=1)
    g.op("MaxPool", [x], kernel_shape=[3, 3], dilations=[2, 2], pads=[0, 1, 2, 1])
    g.op("MaxPool", [g.input((1, 2, 9), lo=-5.0, hi=-1.0)], kernel_shape=[3], strides=[2], pads=[1, 1])  # 1-D, < 0
    g.op("AveragePool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)
    g.op("AveragePool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=0)
    g.op("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1, count_include_pad=1)
    g.op("AveragePool", [x], kernel_shape=[3, 2], auto_pad="SAME_UPPER")
    g.op("GlobalAveragePool", [x])
    g.op("ReduceMean", [x, g.const(np.array([2, 3], np.int64))], keepdims=1)
    g.op("ReduceMean", [x, g.const(np.array([1], np.int64))], keepdims=0)
    g.op("ReduceMean", [x, g.const(np.array([-1, 1], np.int64))], keepdims=0)
    return g


def test_pooling_and_reductions(gcc, tmp_path):
    pool_graph().check(tmp_path)


def test_data_movement_and_views(gcc, tmp_path):
    g = Graph()
    x = g.input((1, 2, 3, 4))
    g.op("Concat", [x, g.input((1, 5, 3, 4)), g.weights((1, 1, 3, 4))], axis=1)
    g.op("Concat", [x, g.input((1, 2, 3, 1))], axis=-1)
    g.op("Transpose", [x], perm=[0, 2, 3, 1])
    g.op("Transpose", [g.input((1, 3, 5))])
    g.op("Pad", [x, g.const(np.array([0, 1, 2, 0, 0, 0, 1, 3], np.int64)), g.const(np.float32(0.5))])
    g.op("Pad", [x, g.const(np.array([1, 2, 0, 3], np.int64)), g.const(np.float32(-1.0)),
                 g.const(np.array([-1, 2], np.int64))])
    # views between computations are aliases, not copies; a view of a graph input into an
    # output (both fixed buffers) is a copy
    r = g.op("Reshape", [g.op("Relu", [x], out=False), g.const(np.array([1, 6, 4], np.int64))], out=False)
    f = g.op("Flatten", [g.op("Sigmoid", [r], out=False)], axis=1, out=False)
    u = g.op("Unsqueeze", [f, g.const(np.array([1], np.int64))], out=False)
    g.op("Neg", [g.op("Squeeze", [u, g.const(np.array([1], np.int64))], out=False)])
    g.op("Flatten", [x], axis=2)
    res = g.check(tmp_path)
    text = res["cm"].files["model.c"]
    assert text.count("a view of its operand's buffer: nothing to do") == 4
    assert "_flatten(" in text  # the input-to-output one


def test_in_place_elementwise_shares_the_arena():
    g = Graph()
    x = g.input((1, 8, 16, 16))
    y = g.op("Relu", [g.op("Conv", [x, g.weights((8, 8, 3, 3))], out=False, pads=[1, 1, 1, 1])], out=False)
    g.op("Add", [g.op("Sigmoid", [y], out=False), g.op("Conv", [x, g.weights((8, 8, 1, 1))], out=False)])
    cm = emit_model(qcc.import_model(g.model()))
    plane = 8 * 16 * 16 * 4
    assert cm.arena_bytes < 4 * plane <= cm.naive_bytes


def test_unsupported_float_ops_are_clear_errors():
    g = Graph()
    x = g.input((1, 2, 5, 5))
    g.op("Pad", [x, g.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))], mode="reflect")
    with pytest.raises(qcc.QccError, match=r"onnx\.Pad 'pad_1'.*constant mode"):
        emit_model(qcc.import_model(g.model()))
    g = Graph()
    g.op("Conv", [g.input((1, 2, 5, 5)), g.input((3, 2, 3, 3))])
    with pytest.raises(qcc.QccError, match=r"onnx\.Conv 'conv_1'.*weights.*constant"):
        emit_model(qcc.import_model(g.model()))


def test_constants_are_exact(gcc, tmp_path):
    """Weights are written as the shortest decimals that read back to the same float32."""
    tricky = np.array([1.0, -0.0, 0.1, 1 / 3, 3.4028235e38, -1.1754944e-38, 1e-45, 123456.79, -2.5e-7],
                      np.float32)
    g = Graph()
    g.op("Add", [g.input((1, tricky.size), lo=0.0, hi=0.0), g.const(tricky)])
    res = g.check(tmp_path, tol=0.0)
    np.testing.assert_array_equal(res["got"]["y1"], np.broadcast_to(tricky, (2, tricky.size)))
