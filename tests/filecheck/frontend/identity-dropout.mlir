// RUN: %python %inputs/make_model.py identity_dropout %t.onnx
// RUN: qcc-opt %t.onnx | filecheck %s

// Identity and inference-mode Dropout disappear on import.

// CHECK:      func.func @main(%x: tensor<1x8xf32> {qcc.name = "x"})
// CHECK-NEXT:   %y = onnx.Relu %x {qcc.name = "relu"} : (tensor<1x8xf32>) -> tensor<1x8xf32>
// CHECK-NEXT:   func.return %y
