"""Writes the small ONNX models the frontend FileCheck tests import.

    python make_model.py NAME OUT.onnx
"""

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _model(nodes, inputs, outputs, inits=(), opset=18):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def shape_subgraph():
    # Flatten written the way exporters do it: Shape -> Gather -> Unsqueeze -> Concat -> Reshape.
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 48])
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "axes0"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "zero"], ["n"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"], name="unsq"),
        helper.make_node("Concat", ["n1", "minus1"], ["newshape"], name="concat", axis=0),
        helper.make_node("Reshape", ["x", "newshape"], ["y"], name="reshape"),
    ]
    return _model(nodes, [x], [y], inits)


def identity_dropout():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])
    nodes = [
        helper.make_node("Identity", ["x"], ["a"], name="id"),
        helper.make_node("Dropout", ["a"], ["b"], name="drop"),
        helper.make_node("Relu", ["b"], ["y"], name="relu"),
    ]
    return _model(nodes, [x], [y])


def paddle_dynamic():
    # Paddle-style symbolic dims that only --input-shape can bind.
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                      ["p2o.DynamicDimension.0", 3, "p2o.DynamicDimension.1", "?"])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 2, "h", "w"])
    w = numpy_helper.from_array(np.ones((2, 3, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["image", "w"], ["out"], name="conv", pads=[1, 1, 1, 1])]
    return _model(nodes, [x], [y], [w])


def qdq():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    inits = [numpy_helper.from_array(np.array(0.05, np.float32), "s"),
             numpy_helper.from_array(np.array(3, np.int8), "zp")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="q"),
             helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"], name="dq")]
    return _model(nodes, [x], [y], inits)


def clip_attribute_form():
    # Opset 6..10 Clip carries min/max as attributes; 11+ as inputs.
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Clip", ["x"], ["y"], name="relu6", min=0.0, max=6.0)]
    return _model(nodes, [x], [y], opset=10)


def unsupported_op():
    # MaxRoiPool is a real ONNX op that qcc does not implement.
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    rois = numpy_helper.from_array(np.array([[0, 0, 0, 3, 3]], np.float32), "rois")
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 2])
    nodes = [helper.make_node("MaxRoiPool", ["x", "rois"], ["y"], name="my_roipool", pooled_shape=[2, 2])]
    return _model(nodes, [x], [y], [rois], opset=14)


def castlike_zero_bias():
    # torch.onnx (dynamo, optimize=False) builds a bias-less conv's zero bias from the activation's type.
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])
    inits = [numpy_helper.from_array(np.ones((2, 2, 1, 1), np.float32), "w"),
             numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([2], np.int64), "n")]
    nodes = [helper.make_node("CastLike", ["zero", "x"], ["z"], name="castlike"),
             helper.make_node("Expand", ["z", "n"], ["b"], name="expand"),
             helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv")]
    return _model(nodes, [x], [y], inits)


if __name__ == "__main__":
    name, out = sys.argv[1], sys.argv[2]
    model = globals()[name]()
    # every input is a valid ONNX model: what a test then sees is qcc's doing, not a broken file
    onnx.checker.check_model(model)
    onnx.save(model, out)
