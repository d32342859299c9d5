// RUN: qcc-opt %s -p fold-constant-mul-div --print-large-constants --split-input-file | filecheck %s

// Conv -> Mul by one value per channel -> Add of a scalar: both fold, W rows scale by
// k = [0.5, 4] and the bias becomes 0 * k + 2.

builtin.module attributes {onnx.opset = 18 : i64} {
  func.func @main(%x: tensor<1x2x4x4xf32> {qcc.name = "x"}) -> (tensor<1x2x4x4xf32> {qcc.name = "y"}) {
    %w = onnx.Constant {value = #onnx.dense<tensor<2x2x1x1xf32>, "0x0000803F00000040000080BF0000003F">} : () -> tensor<2x2x1x1xf32>
    %c = onnx.Conv %x, %w {qcc.name = "conv"} : (tensor<1x2x4x4xf32>, tensor<2x2x1x1xf32>) -> tensor<1x2x4x4xf32>
    %k = onnx.Constant {value = #onnx.dense<tensor<2x1x1xf32>, "0x0000003F00008040">} : () -> tensor<2x1x1xf32>
    %m = onnx.Mul %k, %c {qcc.name = "mul"} : (tensor<2x1x1xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
    %two = onnx.Constant {value = #onnx.dense<tensor<f32>, "0x00000040">} : () -> tensor<f32>
    %y = onnx.Add %m, %two {qcc.name = "add"} : (tensor<1x2x4x4xf32>, tensor<f32>) -> tensor<1x2x4x4xf32>
    func.return %y : tensor<1x2x4x4xf32>
  }
}

// CHECK-LABEL: func.func @main
// CHECK:      %[[W:.*]] = onnx.Constant {value = #onnx.dense<tensor<2x2x1x1xf32>, "0x0000003F0000803F000080C000000040">, qcc.name = "conv+mul.weight_add_folded"}
// CHECK-NEXT: %[[B:.*]] = onnx.Constant {value = #onnx.dense<tensor<2xf32>, "0x0000004000000040">, qcc.name = "conv+mul.bias_add_folded"}
// CHECK-NEXT: %[[Y:.*]] = onnx.Conv %x, %[[W]], %[[B]] {qcc.name = "conv+mul+add"}
// CHECK-NOT:  onnx.Mul
// CHECK-NOT:  onnx.Add
// CHECK:      func.return %[[Y]]

// -----

// Gemm (B not transposed: scale its columns) -> Div by one value per output: B * [1, -0.5], C * [1, -0.5].

builtin.module attributes {onnx.opset = 18 : i64} {
  func.func @main(%x: tensor<1x2xf32> {qcc.name = "x"}) -> (tensor<1x2xf32> {qcc.name = "y"}) {
    %b = onnx.Constant {value = #onnx.dense<tensor<2x2xf32>, "0x0000803F000000400000404000008040">} : () -> tensor<2x2xf32>
    %c = onnx.Constant {value = #onnx.dense<tensor<2xf32>, "0x0000803F00000040">} : () -> tensor<2xf32>
    %g = onnx.Gemm %x, %b, %c {qcc.name = "fc"} : (tensor<1x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
    %d = onnx.Constant {value = #onnx.dense<tensor<2xf32>, "0x0000803F000000C0">} : () -> tensor<2xf32>
    %y = onnx.Div %g, %d {qcc.name = "div"} : (tensor<1x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
    func.return %y : tensor<1x2xf32>
  }
}

// CHECK-LABEL: func.func @main
// CHECK:      %[[B:.*]] = onnx.Constant {value = #onnx.dense<tensor<2x2xf32>, "0x0000803F000080BF00004040000000C0">
// CHECK-NEXT: %[[C:.*]] = onnx.Constant {value = #onnx.dense<tensor<2xf32>, "0x0000803F000080BF">
// CHECK-NEXT: %[[Y:.*]] = onnx.Gemm %x, %[[B]], %[[C]] {qcc.name = "fc+div"}
// CHECK-NOT:  onnx.Div
// CHECK:      func.return %[[Y]]

// -----

// Not legal: a constant that varies along a spatial axis, a divisor under the
// Conv (c / y), and a Conv result with a second user.

builtin.module attributes {onnx.opset = 18 : i64} {
  func.func @main(%x: tensor<1x1x4x4xf32> {qcc.name = "x"}) -> (tensor<1x1x4x4xf32> {qcc.name = "y"}, tensor<1x1x4x4xf32> {qcc.name = "z"}, tensor<1x1x4x4xf32> {qcc.name = "u"}) {
    %w = onnx.Constant {value = #onnx.dense<tensor<1x1x1x1xf32>, "0x00000040">} : () -> tensor<1x1x1x1xf32>
    %c = onnx.Conv %x, %w {qcc.name = "conv"} : (tensor<1x1x4x4xf32>, tensor<1x1x1x1xf32>) -> tensor<1x1x4x4xf32>
    %s = onnx.Constant {value = #onnx.dense<tensor<4x1xf32>, "0x0000803F000000400000404000008040">} : () -> tensor<4x1xf32>
    %y = onnx.Mul %c, %s {qcc.name = "spatial"} : (tensor<1x1x4x4xf32>, tensor<4x1xf32>) -> tensor<1x1x4x4xf32>
    %c2 = onnx.Conv %x, %w {qcc.name = "conv2"} : (tensor<1x1x4x4xf32>, tensor<1x1x1x1xf32>) -> tensor<1x1x4x4xf32>
    %one = onnx.Constant {value = #onnx.dense<tensor<f32>, "0x0000803F">} : () -> tensor<f32>
    %z = onnx.Div %one, %c2 {qcc.name = "reciprocal"} : (tensor<f32>, tensor<1x1x4x4xf32>) -> tensor<1x1x4x4xf32>
    %c3 = onnx.Conv %x, %w {qcc.name = "conv3"} : (tensor<1x1x4x4xf32>, tensor<1x1x1x1xf32>) -> tensor<1x1x4x4xf32>
    %u = onnx.Mul %c3, %one {qcc.name = "shared"} : (tensor<1x1x4x4xf32>, tensor<f32>) -> tensor<1x1x4x4xf32>
    %v = onnx.Add %u, %c3 {qcc.name = "second_user"} : (tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>) -> tensor<1x1x4x4xf32>
    func.return %y, %z, %v : tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>
  }
}

// CHECK-LABEL: func.func @main
// CHECK: onnx.Mul %{{.*}}, %{{.*}} {qcc.name = "spatial"}
// CHECK: onnx.Div %{{.*}}, %{{.*}} {qcc.name = "reciprocal"}
// CHECK: onnx.Mul %{{.*}}, %{{.*}} {qcc.name = "shared"}
