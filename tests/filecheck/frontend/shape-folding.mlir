// RUN: %python %inputs/make_model.py shape_subgraph %t.onnx
// RUN: qcc-opt %t.onnx | filecheck %s

// The exporter's Shape/Gather/Unsqueeze/Concat chain folds to one constant;
// the dynamic batch dimension binds to 1.

// CHECK:      func.func @main(%x: tensor<1x3x4x4xf32> {qcc.name = "x"}) -> (tensor<1x48xf32> {qcc.name = "y"}) {
// CHECK-NEXT:   %newshape = onnx.Constant {value = #onnx.dense<tensor<2xi64>, "0x0100000000000000FFFFFFFFFFFFFFFF">} : () -> tensor<2xi64>
// CHECK-NEXT:   %y = onnx.Reshape %x, %newshape {qcc.name = "reshape"} : (tensor<1x3x4x4xf32>, tensor<2xi64>) -> tensor<1x48xf32>
// CHECK-NEXT:   func.return %y : tensor<1x48xf32>
// CHECK-NOT:  onnx.Shape
