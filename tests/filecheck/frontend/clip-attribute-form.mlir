// RUN: %python %inputs/make_model.py clip_attribute_form %t.onnx
// RUN: qcc-opt %t.onnx | filecheck %s

// Opset-10 Clip keeps min/max as attributes; the module records the opset that gives them meaning.

// CHECK: builtin.module attributes {onnx.opset = 10 : i64}
// CHECK: onnx.Clip %x {max = 6.000000e+00 : f64, min = 0.000000e+00 : f64, qcc.name = "relu6"}
