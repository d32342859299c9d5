// RUN: qcc-opt %s --split-input-file --verify-diagnostics

// Verifier errors of quant.channel_scale and quant.softmax.

func.func @f(%x: tensor<1x3x4x4x!quant.uniform<i8, 0.05, -7>>, %s: tensor<1x3x4x1x!quant.uniform<i8, 0.004, -128>>) {
  // expected-error @+1 {{quant.channel_scale: shapes [1, 3, 4, 4] * [1, 3, 4, 1] -> [1, 3, 4, 4] must be [N, C, ...] * [N, C, 1, ...] -> [N, C, ...]}}
  %y = quant.channel_scale %x, %s : (tensor<1x3x4x4x!quant.uniform<i8, 0.05, -7>>, tensor<1x3x4x1x!quant.uniform<i8, 0.004, -128>>) -> tensor<1x3x4x4x!quant.uniform<i8, 0.04, 5>>
  func.return
}

// -----

func.func @f(%l: tensor<1x16x!quant.uniform<i4, 0.5, 0>>) {
  // expected-error @+1 {{quant.softmax: the result must be 4-bit with scale 2^-4 and zero point -8}}
  %p = quant.softmax %l {axis = 1 : i64, table = #onnx.dense<tensor<16xi32>, "0x000100009B0000005E0000003900000023000000150000000D000000080000000500000003000000020000000100000001000000000000000000000000000000">} : (tensor<1x16x!quant.uniform<i4, 0.5, 0>>) -> tensor<1x16x!quant.uniform<i4, 0.1, -8>>
  func.return
}

// -----

func.func @f(%l: tensor<1x16x!quant.uniform<i4, 0.5, 0>>) {
  // expected-error @+1 {{quant.softmax: 'table' must be positive at 0 and non-increasing}}
  %p = quant.softmax %l {axis = 1 : i64, table = #onnx.dense<tensor<16xi32>, "0x000100009B0000005E0000005F00000023000000150000000D000000080000000500000003000000020000000100000001000000000000000000000000000000">} : (tensor<1x16x!quant.uniform<i4, 0.5, 0>>) -> tensor<1x16x!quant.uniform<i4, 0.0625, -8>>
  func.return
}

// -----

func.func @f(%l: tensor<1x16x!quant.uniform<i4, 0.5, 0>>) {
  // expected-error @+1 {{quant.softmax: axis must be in [0, 2), got 2}}
  %p = quant.softmax %l {axis = 2 : i64, table = #onnx.dense<tensor<16xi32>, "0x000100009B0000005E0000003900000023000000150000000D000000080000000500000003000000020000000100000001000000000000000000000000000000">} : (tensor<1x16x!quant.uniform<i4, 0.5, 0>>) -> tensor<1x16x!quant.uniform<i4, 0.0625, -8>>
  func.return
}

// -----

func.func @f(%l: tensor<1x200000000x!quant.uniform<i4, 0.5, 0>>) {
  // expected-error @+1 {{quant.softmax: 200000000 entries of up to 256 overflow the int32 sum}}
  %p = quant.softmax %l {axis = 1 : i64, table = #onnx.dense<tensor<16xi32>, "0x000100009B0000005E0000003900000023000000150000000D000000080000000500000003000000020000000100000001000000000000000000000000000000">} : (tensor<1x200000000x!quant.uniform<i4, 0.5, 0>>) -> tensor<1x200000000x!quant.uniform<i4, 0.0625, -8>>
  func.return
}
