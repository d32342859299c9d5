// RUN: qcc-opt %s -p fold-batchnorm --print-large-constants | filecheck %s

// k = gamma / sqrt(var + eps) = [4/2, 1/1]: W rows scale by k, bias = (0 - mean) k + beta; the same
// BatchNormalization after a Gemm folds into its B and C.

builtin.module attributes {onnx.opset = 18 : i64} {
  func.func @main(%x: tensor<1x2x4x4xf32> {qcc.name = "x"}) -> (tensor<1x2x4x4xf32> {qcc.name = "y"}) {
    %w = onnx.Constant {value = #onnx.dense<tensor<2x2x1x1xf32>, "0x0000803F00000040000080BF0000003F">} : () -> tensor<2x2x1x1xf32>
    %c = onnx.Conv %x, %w {qcc.name = "conv"} : (tensor<1x2x4x4xf32>, tensor<2x2x1x1xf32>) -> tensor<1x2x4x4xf32>
    %g = onnx.Constant {value = #onnx.dense<tensor<2xf32>, "0x000080400000803F">} : () -> tensor<2xf32>
    %b = onnx.Constant {value = #onnx.dense<tensor<2xf32>, "0x0000003F000080BF">} : () -> tensor<2xf32>
    %m = onnx.Constant {value = #onnx.dense<tensor<2xf32>, "0x0000803F00000000">} : () -> tensor<2xf32>
    %v = onnx.Constant {value = #onnx.dense<tensor<2xf32>, "0x0000404000000000">} : () -> tensor<2xf32>
    %y = onnx.BatchNormalization %c, %g, %b, %m, %v {epsilon = 1.0 : f64, qcc.name = "bn"} : (tensor<1x2x4x4xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x4x4xf32>
    func.return %y : tensor<1x2x4x4xf32>
  }
  // Gemm (transB: B is [M, K], its rows scale by k = [2, 1]; C = (C - mean) k + beta)
  func.func @gemm(%x: tensor<1x2xf32> {qcc.name = "x"}) -> (tensor<1x2xf32> {qcc.name = "y"}) {
    %w = onnx.Constant {value = #onnx.dense<tensor<2x2xf32>, "0x0000803F00000040000080BF0000003F">} : () -> tensor<2x2xf32>
    %c = onnx.Constant {value = #onnx.dense<tensor<2xf32>, "0x0000003F000080BF">} : () -> tensor<2xf32>
    %f = onnx.Gemm %x, %w, %c {transB = 1 : i64, qcc.name = "fc"} : (tensor<1x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
    %g = onnx.Constant {value = #onnx.dense<tensor<2xf32>, "0x000080400000803F">} : () -> tensor<2xf32>
    %b = onnx.Constant {value = #onnx.dense<tensor<2xf32>, "0x0000003F000080BF">} : () -> tensor<2xf32>
    %m = onnx.Constant {value = #onnx.dense<tensor<2xf32>, "0x0000803F00000000">} : () -> tensor<2xf32>
    %v = onnx.Constant {value = #onnx.dense<tensor<2xf32>, "0x0000404000000000">} : () -> tensor<2xf32>
    %y = onnx.BatchNormalization %f, %g, %b, %m, %v {epsilon = 1.0 : f64, qcc.name = "bn"} : (tensor<1x2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
    func.return %y : tensor<1x2xf32>
  }
}

// CHECK:      %[[W:.*]] = onnx.Constant {value = #onnx.dense<tensor<2x2x1x1xf32>, "0x0000004000008040000080BF0000003F">, qcc.name = "conv.weight_bn_folded"}
// CHECK-NEXT: %[[B:.*]] = onnx.Constant {value = #onnx.dense<tensor<2xf32>, "0x0000C0BF000080BF">, qcc.name = "conv.bias_bn_folded"}
// CHECK-NEXT: %[[Y:.*]] = onnx.Conv %x, %[[W]], %[[B]] {qcc.name = "conv+bn"}
// CHECK-NOT:  onnx.BatchNormalization
// CHECK:      func.return %[[Y]]

// CHECK-LABEL: func.func @gemm
// CHECK:      %[[W:.*]] = onnx.Constant {value = #onnx.dense<tensor<2x2xf32>, "0x0000004000008040000080BF0000003F">, qcc.name = "fc.weight_bn_folded"}
// CHECK-NEXT: %[[C:.*]] = onnx.Constant {value = #onnx.dense<tensor<2xf32>, "0x000000BF000000C0">, qcc.name = "fc.bias_bn_folded"}
// CHECK-NEXT: %[[Y:.*]] = onnx.Gemm %x, %[[W]], %[[C]] {transB = 1 : i64, qcc.name = "fc+bn"}
// CHECK-NOT:  onnx.BatchNormalization
// CHECK:      func.return %[[Y]]
