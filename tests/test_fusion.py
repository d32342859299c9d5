"""Fusion and folding passes, the squeeze-excite channel scale and the integer softmax.

Float-level folds (fold-batchnorm on Conv/ConvTranspose/Gemm, fold-constant-mul-div,
recognize-activations) must leave the float function unchanged up to float32
rounding (checked against onnxruntime on the original model); the new integer ops
(quant.channel_scale, quant.softmax) must match their definition in the
interpreter and the generated C bit for bit; the integer softmax must stay close
to the float one; and the exact quantize cancellations must be exact on every code.
"""

from __future__ import annotations

import collections
import pathlib

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from xdsl.context import Context

import qcc
import test_c_backend as tc
from test_c_backend import gcc  # noqa: F401 - the fixture (skip without gcc, fail under CI)
from conftest import MODELS, ort_run
from qcc import int_kernels
from qcc import numerics as nx
from qcc.dialects import quant as q
from qcc.passes.fold_batchnorm import FoldBatchNormPass
from qcc.passes.fold_constant_mul_div import FoldConstantMulDivPass
from qcc.passes.lower_to_quant import softmax_table
from qcc.passes.recognize_activations import RecognizeActivationsPass

INPUTS = pathlib.Path(__file__).parent / "filecheck" / "inputs"
RNG = np.random.default_rng(7)


def _model(nodes, inits, x_shape, y_shape, opset=18):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                          [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _op_types(module) -> collections.Counter:
    return collections.Counter(o.name for o in module.walk())


def _check_pass(model, pass_, gone: str, x_shape, n_left: dict):
    """The pass removes every `gone` op, leaves `n_left` ops, and keeps the function."""
    x = RNG.normal(size=(4, *x_shape[1:])).astype(np.float32)
    want = np.concatenate([ort_run(model, {"x": x[i:i + 1]})[0] for i in range(len(x))])
    module = qcc.import_model(model)
    pass_.apply(Context(), module)
    module.verify()
    ops = _op_types(module)
    assert ops[gone] == 0, ops
    for k, v in n_left.items():
        assert ops[k] == v, ops
    got = qcc.interpret(module, {"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def _bn_inits(c):
    return {"g": RNG.uniform(0.5, 2, c), "b": RNG.normal(size=c), "m": RNG.normal(size=c), "v": RNG.uniform(0.5, 2, c)}


@pytest.mark.parametrize("trans_b,bias_shape", [(0, (3,)), (1, (1, 3)), (1, None)])
def test_batchnorm_folds_into_gemm(trans_b, bias_shape):
    w = RNG.normal(size=(3, 5) if trans_b else (5, 3))
    inits = {"w": w, **_bn_inits(3)}
    ins = ["x", "w"]
    if bias_shape is not None:
        inits["c"] = RNG.normal(size=bias_shape)
        ins.append("c")
    nodes = [helper.make_node("Gemm", ins, ["t"], name="fc", transB=trans_b, alpha=0.7, beta=1.3),
             helper.make_node("BatchNormalization", ["t", "g", "b", "m", "v"], ["y"], name="bn", epsilon=1e-3)]
    _check_pass(_model(nodes, inits, [1, 5], [1, 3]), FoldBatchNormPass(), "onnx.BatchNormalization", [1, 5],
                {"onnx.Gemm": 1})


@pytest.mark.parametrize("group", [1, 2])
def test_batchnorm_folds_into_conv_transpose(group):
    inits = {"w": RNG.normal(size=(4, 6 // group, 3, 3)), "wb": RNG.normal(size=6), **_bn_inits(6)}
    nodes = [helper.make_node("ConvTranspose", ["x", "w", "wb"], ["t"], name="up", group=group, strides=[2, 2]),
             helper.make_node("BatchNormalization", ["t", "g", "b", "m", "v"], ["y"], name="bn")]
    _check_pass(_model(nodes, inits, [1, 4, 5, 5], [1, 6, 11, 11]), FoldBatchNormPass(), "onnx.BatchNormalization",
                [1, 4, 5, 5], {"onnx.ConvTranspose": 1})


def test_constant_mul_div_add_sub_fold_into_conv_and_gemm():
    inits = {"w": RNG.normal(size=(3, 2, 3, 3)), "k": RNG.uniform(0.5, 2, (3, 1, 1)), "d": [4.0],
             "s": RNG.normal(size=(1, 3, 1, 1)), "fw": RNG.normal(size=(3 * 6 * 6, 4)), "a": RNG.normal(size=4),
             "two": 2.0}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Mul", ["k", "c"], ["m"], name="mul"),
             helper.make_node("Div", ["m", "d"], ["dv"], name="div"),
             helper.make_node("Sub", ["s", "dv"], ["sb"], name="sub"),  # s - y: y * -1 + s
             helper.make_node("Flatten", ["sb"], ["f"], name="flat"),
             helper.make_node("MatMul", ["f", "fw"], ["mm"], name="mm"),  # not a producer it folds into
             helper.make_node("Gemm", ["mm", "fw2"], ["g"], name="fc"),
             helper.make_node("Add", ["g", "a"], ["ga"], name="add"),
             helper.make_node("Mul", ["ga", "two"], ["y"], name="double")]
    inits["fw2"] = RNG.normal(size=(4, 4))
    _check_pass(_model(nodes, inits, [1, 2, 8, 8], [1, 4]), FoldConstantMulDivPass(), "onnx.Div", [1, 2, 8, 8],
                {"onnx.Mul": 0, "onnx.Sub": 0, "onnx.Add": 0, "onnx.Conv": 1, "onnx.Gemm": 1, "onnx.MatMul": 1})


def test_spatial_constant_does_not_fold():
    inits = {"w": RNG.normal(size=(3, 2, 1, 1)), "k": RNG.normal(size=(1, 1, 4, 4))}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Mul", ["c", "k"], ["y"], name="mul")]
    _check_pass(_model(nodes, inits, [1, 2, 4, 4], [1, 3, 4, 4]), FoldConstantMulDivPass(), "onnx.Div",
                [1, 2, 4, 4], {"onnx.Mul": 1, "onnx.Conv": 1})


def test_pytorch_activations_are_recognized():
    import onnx

    model = onnx.load(INPUTS / "torch_activations.onnx")
    _check_pass(model, RecognizeActivationsPass(), "onnx.Clip", [1, 2, 8, 8],
                {"onnx.HardSwish": 2, "onnx.HardSigmoid": 1, "onnx.Swish": 1, "onnx.Sigmoid": 0, "onnx.Div": 0,
                 "onnx.Mul": 0})


def test_recognized_activations_quantize_to_lookup_tables(tmp_path):
    x = RNG.normal(size=(32, 2, 8, 8)).astype(np.float32)
    art = qcc.compile(INPUTS / "torch_activations.onnx", str(tmp_path / "out"), calib={"x": x}, bits=(8,))
    ops = _op_types(art.module)
    assert ops["quant.lookup"] == 4 and ops["quant.mul"] == 0, ops
    assert not art.module.attributes["qcc.float_ops"].data
    names = {o["name"] for o in art.report["ops"]}
    assert "/Sigmoid+/Mul_1" in names and "/Add+/Clip+/Mul+/Div" in names
    want = ort_run(INPUTS / "torch_activations.onnx", {"x": x[:1]})[0]
    got = art.run({"x": x[:1]})["y"]
    assert np.abs(got - want).max() < 0.1 * np.abs(want).max()


# ------------------------------------------------------------- quant.channel_scale


def _channel_scale_case(name, xq, sq, yq, shape, **attrs):
    s_shape = (*shape[:2], *[1] * (len(shape) - 2))
    return tc.Case(name, [(xq, shape), (sq, s_shape)],
                   lambda qv: [tc.op_of(q.ChannelScaleOp, qv, q.qtensor(yq, shape), **attrs)])


CHANNEL_SCALE_CASES = [
    _channel_scale_case("se 8-bit", tc.QP(8, 0.05, -7), tc.QP(8, 1 / 255, -128), tc.QP(8, 0.04, 5), (1, 6, 5, 4)),
    _channel_scale_case("se 4-bit", tc.QP(4, 0.3, 1), tc.QP(4, 0.07, -8), tc.QP(4, 0.2, -1), (1, 3, 7)),
    _channel_scale_case("se clamped", tc.QP(8, 0.05, 3), tc.QP(8, 0.01, -100), tc.QP(8, 0.03, -2), (1, 4, 3, 3),
                        act_min=-2, act_max=90),
    _channel_scale_case("se 16-bit", tc.QP(16, 0.001), tc.QP(8, 0.004, -128), tc.QP(16, 0.002), (1, 2, 3, 3)),
    # products near 2^30 with a multiplier of 4: the kernel's generic requantize32 path (sat32 can clip)
    _channel_scale_case("se 16x16 saturating", tc.QP(16, 1.0), tc.QP(16, 1.0), tc.QP(16, 0.25), (1, 2, 2, 2)),
]


def test_channel_scale_is_quant_mul():
    for case in CHANNEL_SCALE_CASES:
        (xq, xs), (sq, ss) = case.inputs
        x = RNG.integers(xq.qmin, xq.qmax + 1, size=(3, *xs[1:])).astype(nx.storage_dtype(xq.bits))
        s = RNG.integers(sq.qmin, sq.qmax + 1, size=(3, *ss[1:])).astype(nx.storage_dtype(sq.bits))
        a = tc.module_of([case])  # verifies
        op = next(o for o in a.walk() if isinstance(o, q.ChannelScaleOp))
        mul = q.MulOp(list(op.operands), [op.results[0].type], dict(op.attributes))
        assert np.array_equal(int_kernels.prepare(op)([x, s]), int_kernels.prepare(mul)([x, s])), case.name


def test_channel_scale_c_matches_interpreter(gcc, tmp_path):
    tc.run_cases(CHANNEL_SCALE_CASES, tmp_path, seed=11, n=4)


def test_relu_after_channel_scale_fuses_into_it():
    from qcc.passes.fuse_activation import FuseActivationPass

    xq, sq, yq = tc.QP(8, 0.05, -7), tc.QP(8, 1 / 255, -128), tc.QP(8, 0.04, 5)
    case = tc.Case("se relu", [(xq, (1, 4, 3, 3)), (sq, (1, 4, 1, 1))], lambda qv: (lambda cs: [
        cs, tc.op_of(q.ClampOp, [cs.results[0]], q.qtensor(yq, (1, 4, 3, 3)), act_min=5)])(
        tc.op_of(q.ChannelScaleOp, qv, q.qtensor(yq, (1, 4, 3, 3)))))
    module = tc.module_of([case])
    feeds = tc.random_inputs([case], 4, RNG)
    want = qcc.interpret(module, feeds)
    FuseActivationPass().apply(Context(), module)
    module.verify()
    ops = _op_types(module)
    assert ops["quant.clamp"] == 0 and ops["quant.channel_scale"] == 1
    got = qcc.interpret(module, feeds)
    assert all(np.array_equal(got[k], want[k]) for k in want)


def test_mbv3_squeeze_excite_becomes_channel_scale(tmp_path):
    with np.load(MODELS / "digits_calib.npz") as z:
        calib = {"input": z["input"][:32]}
    art = qcc.compile(MODELS / "mbv3_digits.onnx", str(tmp_path / "out"), calib=calib, bits=(8,))
    ops = _op_types(art.module)
    assert ops["quant.channel_scale"] == 4 and ops["quant.mul"] == 0, ops


# ------------------------------------------------------------------ quant.softmax


def _softmax_module(x_qp, shape, axis):
    table = softmax_table(x_qp, shape[axis])
    y_qp = q.softmax_qparams(x_qp.bits)
    return tc.Case(f"softmax {x_qp.bits}-bit axis {axis}", [(x_qp, shape)],
                   lambda qv: [tc.op_of(q.SoftmaxOp, qv, q.qtensor(y_qp, shape), axis=axis,
                                        table=np.asarray(table))])


SOFTMAX_CASES = [_softmax_module(tc.QP(8, 0.1, 10), (1, 10), 1), _softmax_module(tc.QP(8, 0.05, -3), (1, 3, 7, 2), 2),
                 _softmax_module(tc.QP(4, 0.5, 0), (1, 5, 6), 1), _softmax_module(tc.QP(8, 0.02, 0), (1, 2000), 1)]


def test_integer_softmax_is_close_to_float():
    for case in SOFTMAX_CASES:
        (xq, shape), = case.inputs
        module = tc.module_of([case])
        op = next(o for o in module.walk() if isinstance(o, q.SoftmaxOp))
        codes = RNG.integers(xq.qmin, xq.qmax + 1, size=(8, *shape[1:])).astype(nx.storage_dtype(xq.bits))
        got = nx.dequantize(int_kernels.prepare(op)([codes]), q.qparams_of(op.results[0].type))
        x = nx.dequantize(codes, xq).astype(np.float64)
        axis = op.attr("axis")
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        want = e / e.sum(axis=axis, keepdims=True)
        step = 2.0 ** -q.qparams_of(op.results[0].type).bits
        # half a code of output rounding, the clamp of p = 1 to qmax, and the table's 2^-Q rounding
        assert np.abs(got - want).max() <= step * 0.5 + step + 1e-6, case.name
        assert np.abs(got.sum(axis=axis) - 1).max() <= step * shape[axis] / 2 + step, case.name


def test_integer_softmax_c_matches_interpreter(gcc, tmp_path):
    tc.run_cases(SOFTMAX_CASES, tmp_path, seed=5, n=4)


def test_softmax_lowers_to_integer(tmp_path):
    inits = {"w": RNG.normal(size=(8, 10)), "c": RNG.normal(size=10)}
    nodes = [helper.make_node("Gemm", ["x", "w", "c"], ["t"], name="fc"),
             helper.make_node("Softmax", ["t"], ["y"], name="softmax")]
    model = _model(nodes, inits, [1, 8], [1, 10])
    x = RNG.normal(size=(64, 8)).astype(np.float32)
    art = qcc.compile(model, str(tmp_path / "out"), calib={"x": x}, bits=(8,))
    assert _op_types(art.module)["quant.softmax"] == 1
    assert not art.module.attributes["qcc.float_ops"].data
    want = np.concatenate([ort_run(model, {"x": x[i:i + 1]})[0] for i in range(8)])
    got = art.run({"x": x[:8]})["y"]
    assert np.abs(got - want).max() < 0.03
    assert np.array_equal(got, qcc.interpret(art.module, {"x": x[:8]})["y"])


def test_softmax_verifier_rejects_free_result_quantization():
    case = SOFTMAX_CASES[0]
    module = tc.module_of([case])
    op = next(o for o in module.walk() if isinstance(o, q.SoftmaxOp))
    bad = q.SoftmaxOp(list(op.operands), [q.qtensor(tc.QP(8, 0.01, 0), (1, 10))], dict(op.attributes))
    with pytest.raises(Exception, match="scale 2\\^-8"):
        bad.verify()


# ------------------------------------------------------------- cancel-quantize-pairs


@pytest.mark.parametrize("bits", [4, 8, 16])
def test_quantize_of_dequantize_is_exact_on_every_code(bits):
    for _ in range(20):
        lo, hi = nx.qrange(bits)
        qp = tc.QP(bits, float(np.exp(RNG.uniform(-12, 3))), int(RNG.integers(lo, hi + 1)) if bits < 16 else 0)
        codes = np.arange(lo, hi + 1)
        assert np.array_equal(nx.quantize(nx.dequantize(codes, qp), qp), codes), qp


def test_float_swish_runs_in_c(gcc, tmp_path):
    """x * sigmoid(x) becomes Swish; a float build (or a Swish left float) has its C kernel."""
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"], name="sig"),
             helper.make_node("Mul", ["x", "s"], ["t"], name="mul"),
             helper.make_node("Sigmoid", ["t"], ["u"], name="sig2"),
             helper.make_node("Mul", ["u", "t"], ["y"], name="mul2")]
    model = _model(nodes, {}, [1, 3, 5], [1, 3, 5])
    art = qcc.compile(model, str(tmp_path / "out"), float_only=True)
    assert [o["op_type"] for o in art.report["ops"]] == ["Swish", "Swish"]
    x = RNG.normal(size=(4, 3, 5)).astype(np.float32) * 8
    got = art.run({"x": x}, backend="c")["y"]
    want = np.concatenate([ort_run(model, {"x": x[i:i + 1]})[0] for i in range(len(x))])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
