// RUN: qcc-opt %s -p fold-constants --print-large-constants | filecheck %s

// Weights made at run time from constants (ConstantOfShape, then Mul by a scalar) become
// constants, so quantization sees them; ops reading the activation stay.

builtin.module attributes {onnx.opset = 18 : i64} {
  func.func @main(%x: tensor<1x2x2x2xf32> {qcc.name = "x"}) -> (tensor<1x2x2x2xf32> {qcc.name = "y"}) {
    %shape = onnx.Constant {value = #onnx.dense<tensor<4xi64>, "0x0200000000000000020000000000000001000000000000000100000000000000">} : () -> tensor<4xi64>
    %w0 = onnx.ConstantOfShape %shape {value = #onnx.dense<tensor<1xf32>, "0x0000803F">, qcc.name = "w_fill"} : (tensor<4xi64>) -> tensor<2x2x1x1xf32>
    %two = onnx.Constant {value = #onnx.dense<tensor<f32>, "0x00000040">} : () -> tensor<f32>
    %w = onnx.Mul %w0, %two {qcc.name = "w_scale"} : (tensor<2x2x1x1xf32>, tensor<f32>) -> tensor<2x2x1x1xf32>
    %y = onnx.Conv %x, %w {qcc.name = "conv"} : (tensor<1x2x2x2xf32>, tensor<2x2x1x1xf32>) -> tensor<1x2x2x2xf32>
    func.return %y : tensor<1x2x2x2xf32>
  }
}

// CHECK:      %[[W:.*]] = onnx.Constant {value = #onnx.dense<tensor<2x2x1x1xf32>, "0x00000040000000400000004000000040">, qcc.name = "w_scale"} : () -> tensor<2x2x1x1xf32>
// CHECK-NEXT: %y = onnx.Conv %x, %[[W]] {qcc.name = "conv"}
// CHECK-NOT:  onnx.ConstantOfShape
// CHECK-NOT:  onnx.Mul
