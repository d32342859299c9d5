// RUN: qcc-opt %s | qcc-opt --print-large-constants | filecheck %s

// quant.channel_scale (squeeze-excite's x * s[N, C, 1, 1]) and quant.softmax (exp by
// table, result scale 2^-B, zero point -2^(B-1)) round-trip; their verifier errors are in
// channel-scale-softmax-invalid.mlir.

func.func @main(%x: tensor<1x3x4x4x!quant.uniform<i8, 0.05, -7>>, %s: tensor<1x3x1x1x!quant.uniform<i8, 0.00392156862745098, -128>>, %l: tensor<1x16x!quant.uniform<i4, 0.5, 0>>) -> (tensor<1x3x4x4x!quant.uniform<i8, 0.04, 5>>, tensor<1x16x!quant.uniform<i4, 0.0625, -8>>) {
  %y = quant.channel_scale %x, %s {act_min = 5 : i64} : (tensor<1x3x4x4x!quant.uniform<i8, 0.05, -7>>, tensor<1x3x1x1x!quant.uniform<i8, 0.00392156862745098, -128>>) -> tensor<1x3x4x4x!quant.uniform<i8, 0.04, 5>>
  %p = quant.softmax %l {axis = 1 : i64, table = #onnx.dense<tensor<16xi32>, "0x000100009B0000005E0000003900000023000000150000000D000000080000000500000003000000020000000100000001000000000000000000000000000000">} : (tensor<1x16x!quant.uniform<i4, 0.5, 0>>) -> tensor<1x16x!quant.uniform<i4, 0.0625, -8>>
  func.return %y, %p : tensor<1x3x4x4x!quant.uniform<i8, 0.04, 5>>, tensor<1x16x!quant.uniform<i4, 0.0625, -8>>
}

// CHECK:      %y = quant.channel_scale %x, %s {act_min = 5 : i64} : (tensor<1x3x4x4x!quant.uniform<i8, 0.05, -7>>, tensor<1x3x1x1x!quant.uniform<i8, 0.00392156862745098, -128>>) -> tensor<1x3x4x4x!quant.uniform<i8, 0.04, 5>>
// CHECK-NEXT: %p = quant.softmax %l {axis = 1 : i64, table = #onnx.dense<tensor<16xi32>, "0x000100009B0000005E0000003900000023000000150000000D000000080000000500000003000000020000000100000001000000000000000000000000000000">} : (tensor<1x16x!quant.uniform<i4, 0.5, 0>>) -> tensor<1x16x!quant.uniform<i4, 0.0625, -8>>
