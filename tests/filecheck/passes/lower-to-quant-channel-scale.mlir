// RUN: qcc-opt %s -p lower-to-quant,fuse-activation | filecheck %s

// Squeeze-excite's final multiply x [N, C, H, W] * s [N, C, 1, 1] (either operand order)
// lowers to quant.channel_scale with x first; a ReLU after it fuses into its act_min.
// A Mul of two full tensors stays quant.mul.

builtin.module attributes {onnx.opset = 18 : i64} {
  func.func @main(%x: tensor<1x2x2x2xf32> {qcc.name = "x", qcc.ranges = {i8 = array<f64: -1.0, 1.0>}}, %s: tensor<1x2x1x1xf32> {qcc.name = "s", qcc.ranges = {i8 = array<f64: 0.0, 1.0>}}) -> (tensor<1x2x2x2xf32> {qcc.name = "y"}, tensor<1x2x2x2xf32> {qcc.name = "z"}) {
    %m = onnx.Mul %s, %x {qcc.name = "scale", qcc.a_bits = 8 : i64, qcc.ranges = {i8 = array<f64: -1.0, 1.0>}} : (tensor<1x2x1x1xf32>, tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32>
    %y = onnx.Relu %m {qcc.name = "relu", qcc.a_bits = 8 : i64, qcc.ranges = {i8 = array<f64: 0.0, 1.0>}} : (tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32>
    %z = onnx.Mul %x, %x {qcc.name = "square", qcc.a_bits = 8 : i64, qcc.ranges = {i8 = array<f64: 0.0, 1.0>}} : (tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32>
    func.return %y, %z : tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>
  }
}

// CHECK:      %[[X:.*]] = quant.quantize %x
// CHECK-NEXT: %[[S:.*]] = quant.quantize %s
// CHECK-NEXT: %[[Y:.*]] = quant.channel_scale %[[X]], %[[S]] {qcc.name = "scale", qcc.a_bits = 8 : i64, act_min = -128 : i64, act_max = 127 : i64, qcc.fused = "relu"} : (tensor<1x2x2x2x!quant.uniform<i8, {{.*}}>>, tensor<1x2x1x1x!quant.uniform<i8, {{.*}}>>) -> tensor<1x2x2x2x!quant.uniform<i8, {{.*}}>>
// CHECK:      quant.mul %[[X]], %[[X]] {qcc.name = "square"
// CHECK-NOT:  onnx.Mul
