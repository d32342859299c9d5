"""Hypothesis properties of the importer and interpreter: broadcasting and shape
inference agree with numpy's rules, with the declared IR types and with onnxruntime."""

import os

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import TensorProto, helper, numpy_helper

import qcc
from conftest import ort_run
from qcc.dialects.onnx import static_shape
from qcc.interpreter import main_func, run_main

PROPS = settings(max_examples=int(os.environ.get("QCC_PROPERTY_EXAMPLES", "40")), deadline=None)


def _model(nodes, inputs, outputs, inits=(), opset=18):
    g = helper.make_graph(nodes, "p", inputs, outputs, list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def _vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _result_shapes(module):
    return [static_shape(t) for t in main_func(module).function_type.outputs.data]


@PROPS
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4),
       op=st.sampled_from(["Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "Greater", "Where"]))
def test_broadcasting_follows_numpy(shapes, op):
    a_shape, b_shape = shapes.input_shapes
    rng = np.random.default_rng(0)
    a = rng.uniform(0.5, 2.0, a_shape).astype(np.float32)
    b = rng.uniform(0.5, 2.0, b_shape).astype(np.float32)
    if op == "Where":
        cond = numpy_helper.from_array(rng.random(b_shape) > 0.5, "c")
        node = helper.make_node("Where", ["c", "a", "b"], ["y"])
        model = _model([node], [_vi("a", a_shape), _vi("b", b_shape)], [_vi("y", None)], [cond])
        want = np.where(numpy_helper.to_array(cond), a, b)
    else:
        model = _model([helper.make_node(op, ["a", "b"], ["y"])], [_vi("a", a_shape), _vi("b", b_shape)],
                       [helper.make_tensor_value_info("y", TensorProto.BOOL if op == "Greater" else TensorProto.FLOAT,
                                                      None)])
        want = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Max": np.maximum,
                "Min": np.minimum, "Pow": np.power, "Greater": np.greater}[op](a, b)
    module = qcc.import_model(model, {"a": a_shape, "b": b_shape})
    assert _result_shapes(module) == [tuple(shapes.result_shape)]
    (got,) = run_main(module, [a, b])
    assert got.shape == tuple(shapes.result_shape)
    np.testing.assert_allclose(got, want, rtol=1e-6)


@st.composite
def conv_cases(draw):
    group = draw(st.sampled_from([1, 1, 2, 4]))
    cin = group * draw(st.integers(1, 3))
    cout = group * draw(st.integers(1, 3))
    k = draw(st.tuples(st.integers(1, 4), st.integers(1, 4)))
    stride = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    dil = draw(st.tuples(st.integers(1, 2), st.integers(1, 2)))
    auto_pad = draw(st.sampled_from(["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    pads = draw(st.tuples(*[st.integers(0, 2)] * 4)) if auto_pad == "NOTSET" else None
    if auto_pad.startswith("SAME"):
        dil = (1, 1)  # onnxruntime, the reference here, rejects dilated SAME padding
    ext = [(k[i] - 1) * dil[i] + 1 for i in range(2)]
    h = draw(st.integers(ext[0], ext[0] + 6))
    w = draw(st.integers(ext[1], ext[1] + 6))
    return group, cin, cout, k, stride, dil, auto_pad, pads, (h, w)


@PROPS
@given(case=conv_cases(), transpose=st.booleans())
def test_conv_shape_inference_matches_onnxruntime(case, transpose):
    """Declared result types of Conv/ConvTranspose (pads, strides, dilations,
    auto_pad, groups) equal the shapes onnxruntime computes, and so do values."""
    group, cin, cout, k, stride, dil, auto_pad, pads, (h, w) = case
    if transpose and auto_pad != "NOTSET":
        auto_pad, pads = "NOTSET", (0, 0, 0, 0)
    rng = np.random.default_rng(1)
    wshape = (cin, cout // group, *k) if transpose else (cout, cin // group, *k)
    weight = numpy_helper.from_array(rng.standard_normal(wshape).astype(np.float32), "w")
    attrs = dict(strides=list(stride), dilations=list(dil), group=group, auto_pad=auto_pad)
    if pads is not None:
        attrs["pads"] = list(pads)
    node = helper.make_node("ConvTranspose" if transpose else "Conv", ["x", "w"], ["y"], **attrs)
    model = _model([node], [_vi("x", [1, cin, h, w])], [_vi("y", None)], [weight])
    x = rng.standard_normal((1, cin, h, w)).astype(np.float32)
    try:
        (ref,) = ort_run(model, {"x": x})
    except Exception:  # e.g. a transposed conv whose pads leave no output: qcc must refuse it too
        with pytest.raises(qcc.QccError):
            qcc.import_model(model)
        return
    module = qcc.import_model(model)
    assert _result_shapes(module) == [ref.shape]
    (got,) = run_main(module, [x])
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


@PROPS
@given(k=st.integers(1, 3), s=st.integers(1, 3), p=st.integers(0, 1), ceil=st.booleans(),
       hw=st.tuples(st.integers(3, 9), st.integers(3, 9)), op=st.sampled_from(["MaxPool", "AveragePool"]),
       cip=st.booleans())
def test_pool_shape_inference_matches_onnxruntime(k, s, p, ceil, hw, op, cip):
    p = min(p, k - 1) if k > 1 else 0  # ONNX: pads smaller than the kernel
    attrs = dict(kernel_shape=[k, k], strides=[s, s], pads=[p] * 4, ceil_mode=int(ceil))
    if op == "AveragePool":
        attrs["count_include_pad"] = int(cip)
    model = _model([helper.make_node(op, ["x"], ["y"], **attrs)], [_vi("x", [1, 2, *hw])], [_vi("y", None)])
    x = np.random.default_rng(2).standard_normal((1, 2, *hw)).astype(np.float32)
    (ref,) = ort_run(model, {"x": x})
    module = qcc.import_model(model)
    assert _result_shapes(module) == [ref.shape]
    (got,) = run_main(module, [x])
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


@PROPS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), data=st.data())
def test_shape_ops_chain_folds_and_matches_numpy(shape, data):
    """Transpose -> Reshape(shape computed from Shape/Gather/Concat) -> Squeeze/Unsqueeze:
    the computed shapes fold away and the declared types match numpy's."""
    perm = data.draw(st.permutations(range(len(shape))))
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    t_shape = tuple(shape[i] for i in perm)
    inits = [numpy_helper.from_array(np.array([0], np.int64), "i0"),
             numpy_helper.from_array(np.array([-1], np.int64), "m1"),
             numpy_helper.from_array(np.array([0], np.int64), "ax")]
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=list(perm)),
             helper.make_node("Shape", ["t"], ["s"]),
             helper.make_node("Gather", ["s", "i0"], ["d0"], axis=0),
             helper.make_node("Concat", ["d0", "m1"], ["ns"], axis=0),
             helper.make_node("Reshape", ["t", "ns"], ["r"]),
             helper.make_node("Unsqueeze", ["r", "ax"], ["u"]),
             helper.make_node("Squeeze", ["u", "ax"], ["y"])]
    model = _model(nodes, [_vi("x", list(shape))], [_vi("y", None)], inits)
    module = qcc.import_model(model, {"x": shape})
    want = np.transpose(x, perm).reshape(t_shape[0], -1)
    assert _result_shapes(module) == [want.shape]
    text = str(module)
    assert "onnx.Shape" not in text and "onnx.Gather" not in text and "onnx.Concat" not in text
    (got,) = run_main(module, [x])
    np.testing.assert_array_equal(got, want)
