// RUN: %python %inputs/make_model.py castlike_zero_bias %t.onnx
// RUN: qcc-opt %t.onnx | filecheck %s

// CastLike of a constant takes only the type of its second input: it folds even
// though that input is an activation, so the conv's bias is a constant.

// CHECK:      %b = onnx.Constant {value = #onnx.dense<tensor<2xf32>, "0x0000000000000000">} : () -> tensor<2xf32>
// CHECK-NEXT: %y = onnx.Conv %x, %w, %b {qcc.name = "conv"}
// CHECK-NOT:  onnx.CastLike
