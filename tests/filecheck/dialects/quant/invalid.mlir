// RUN: qcc-opt %s --split-input-file --verify-diagnostics

// One chunk per verifier error of the quant dialect: !quant.uniform's parameters,
// the operand contract of every op, weights/bias/accumulator proofs of the dot
// products, activation ranges, tables, packing and shapes.

// !quant.uniform: bad width
// expected-error @+1 {{!quant.uniform: bit width 3 is not one of 2, 4, 8, 16, 32}}
func.func @f(%a: tensor<4x!quant.uniform<i3, 0.1, 0>>) {
  func.return
}

// -----

// !quant.uniform: bad width
// expected-error @+1 {{bit width 64 is not one of 2, 4, 8, 16, 32}}
func.func @f(%a: tensor<4x!quant.uniform<u64, 0.1, 0>>) {
  func.return
}

// -----

// !quant.uniform: scale = 0
// expected-error @+1 {{!quant.uniform: scale 0.0 must be positive and finite}}
func.func @f(%a: tensor<4x!quant.uniform<i8, 0.0, 0>>) {
  func.return
}

// -----

// !quant.uniform: scale < 0
// expected-error @+1 {{scale -0.5 must be positive and finite}}
func.func @f(%a: tensor<4x!quant.uniform<i8, -0.5, 0>>) {
  func.return
}

// -----

// !quant.uniform: one per-channel scale = 0
// expected-error @+1 {{scale 0.0 must be positive and finite}}
func.func @f(%a: tensor<4x!quant.uniform<i8:0, [0.5, 0.0], [0, 0]>>) {
  func.return
}

// -----

// !quant.uniform: zero point above the range
// expected-error @+1 {{zero point 128 is outside [-128, 127] of 8-bit values}}
func.func @f(%a: tensor<4x!quant.uniform<i8, 0.1, 128>>) {
  func.return
}

// -----

// !quant.uniform: zero point below an unsigned range
// expected-error @+1 {{zero point -1 is outside [0, 15] of 4-bit values}}
func.func @f(%a: tensor<4x!quant.uniform<u4, 0.1, -1>>) {
  func.return
}

// -----

// !quant.uniform: per-channel zero point out of range
// expected-error @+1 {{zero point 2 is outside [-2, 1] of 2-bit values}}
func.func @f(%a: tensor<4x!quant.uniform<i2:0, [0.1, 0.1], [0, 2]>>) {
  func.return
}

// -----

// !quant.uniform: scales vs zero points
// expected-error @+1 {{scales and zero points must be non-empty and of equal length}}
func.func @f(%a: tensor<4x!quant.uniform<i8:0, [0.1, 0.2], [0]>>) {
  func.return
}

// -----

// !quant.uniform: not an integer storage type
// expected-error @+1 {{expected a storage type like i8 or u4, got 'f8'}}
func.func @f(%a: tensor<4x!quant.uniform<f8, 0.1, 0>>) {
  func.return
}

// -----

// per-channel axis out of range for the operand's rank
func.func @f(%a: tensor<4x!quant.uniform<i8:1, [0.1], [0]>>) {
  // expected-error @+1 {{quant.clamp: operand 0 axis 1 is out of range for rank 1}}
  %r = quant.clamp %a : (tensor<4x!quant.uniform<i8:1, [0.1], [0]>>) -> tensor<4x!quant.uniform<i8:1, [0.1], [0]>>
  func.return
}

// -----

// per-channel: wrong number of scales for the axis
func.func @f(%a: tensor<4x3x!quant.uniform<i8:0, [0.1, 0.2, 0.3], [0, 0, 0]>>) {
  // expected-error @+1 {{quant.reshape: operand 0 has 3 scales for 4 channels on axis 0}}
  %r = quant.reshape %a : (tensor<4x3x!quant.uniform<i8:0, [0.1, 0.2, 0.3], [0, 0, 0]>>) -> tensor<12x!quant.uniform<i8:0, [0.1, 0.2, 0.3], [0, 0, 0]>>
  func.return
}

// -----

// operand count
func.func @f(%a: tensor<4x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.clamp: takes 1..1 operands, got 2}}
  %r = quant.clamp %a, %a : (tensor<4x!quant.uniform<i8, 0.1, 0>>, tensor<4x!quant.uniform<i8, 0.1, 0>>) -> tensor<4x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// operand count of a dot product
func.func @f(%a: tensor<1x4x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.fully_connected: takes 2..3 operands, got 1}}
  %r = quant.fully_connected %a {acc_bits = 32 : i64} : (tensor<1x4x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x4x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// result count
func.func @f(%a: tensor<4x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.clamp: has exactly one result}}
  %r:2 = quant.clamp %a : (tensor<4x!quant.uniform<i8, 0.1, 0>>) -> (tensor<4x!quant.uniform<i8, 0.1, 0>>, tensor<4x!quant.uniform<i8, 0.1, 0>>)
  func.return
}

// -----

// a float operand where a quantized one is required
func.func @f(%a: tensor<4xf32>) {
  // expected-error @+1 {{quant.clamp: operand 0 must be a quantized tensor, got tensor<4xf32>}}
  %r = quant.clamp %a : (tensor<4xf32>) -> tensor<4x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// a non-tensor operand
func.func @f(%a: f32) {
  // expected-error @+1 {{quant.quantize: operand 0 must be a tensor}}
  %r = quant.quantize %a : (f32) -> tensor<4x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// quantize takes f32
func.func @f(%a: tensor<4x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.quantize: operand 0 must be f32}}
  %r = quant.quantize %a : (tensor<4x!quant.uniform<i8, 0.1, 0>>) -> tensor<4x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// a float result where a quantized one is required
func.func @f(%a: tensor<4x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.clamp: result must be a quantized tensor, got tensor<4xf32>}}
  %r = quant.clamp %a : (tensor<4x!quant.uniform<i8, 0.1, 0>>) -> tensor<4xf32>
  func.return
}

// -----

// dequantize returns f32
func.func @f(%a: tensor<4x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.dequantize: result must be f32}}
  %r = quant.dequantize %a : (tensor<4x!quant.uniform<i8, 0.1, 0>>) -> tensor<4xf16>
  func.return
}

// -----

// quantize keeps the shape
func.func @f(%a: tensor<4xf32>) {
  // expected-error @+1 {{quant.quantize: result shape must equal the operand's}}
  %r = quant.quantize %a : (tensor<4xf32>) -> tensor<2x2x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// dequantize keeps the shape
func.func @f(%a: tensor<4x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.dequantize: result shape must equal the operand's}}
  %r = quant.dequantize %a : (tensor<4x!quant.uniform<i8, 0.1, 0>>) -> tensor<5xf32>
  func.return
}

// -----

// the op's ONNX name is quoted in diagnostics
func.func @f(%a: tensor<4xf32>) {
  // expected-error @+1 {{quant.quantize 'q0': result shape must equal the operand's}}
  %r = quant.quantize %a {qcc.name = "q0"} : (tensor<4xf32>) -> tensor<5x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// requantize is per tensor
func.func @f(%a: tensor<2x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>) {
  // expected-error @+1 {{quant.requantize: operand 0 must be quantized per tensor}}
  %r = quant.requantize %a : (tensor<2x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>) -> tensor<2x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// requantize keeps the shape
func.func @f(%a: tensor<2x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.requantize: result shape must equal the operand's}}
  %r = quant.requantize %a : (tensor<2x!quant.uniform<i8, 0.1, 0>>) -> tensor<3x!quant.uniform<i4, 0.5, 0>>
  func.return
}

// -----

// requantize: the scale ratio must fit the multiplier's shift
func.func @f(%a: tensor<2x!quant.uniform<i8, 1.0e+09, 0>>) {
  // expected-error @+1 {{is too large to requantize}}
  %r = quant.requantize %a : (tensor<2x!quant.uniform<i8, 1.0e+09, 0>>) -> tensor<2x!quant.uniform<i8, 0.5, 0>>
  func.return
}

// -----

// packed size mismatch
func.func @f() {
  // expected-error @+1 {{quant.constant: 32 values of 4 bits pack into 16 bytes, 'packed' holds 15}}
  %r = quant.constant {packed = #onnx.dense<tensor<15xui8>, "0x000102030405060708090A0B0C0D0E">} : () -> tensor<4x8x!quant.uniform<i4, 0.1, 0>>
  func.return
}

// -----

// packed size of 2-bit values (odd count, rounded up)
func.func @f() {
  // expected-error @+1 {{5 values of 2 bits pack into 2 bytes, 'packed' holds 1}}
  %r = quant.constant {packed = #onnx.dense<tensor<1xui8>, "0x00">} : () -> tensor<5x!quant.uniform<i2, 0.1, 0>>
  func.return
}

// -----

// packed must be ui8 bytes
func.func @f() {
  // expected-error @+1 {{quant.constant: 'packed' must be a 1-D #onnx.dense of ui8}}
  %r = quant.constant {packed = #onnx.dense<tensor<4xi8>, "0x00010203">} : () -> tensor<4x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// packed is required
func.func @f() {
  // expected-error @+1 {{'packed' must be a 1-D #onnx.dense of ui8}}
  %r = quant.constant : () -> tensor<4x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// a constant has no operands
func.func @f(%a: tensor<4x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.constant: takes 0..0 operands, got 1}}
  %r = quant.constant %a {packed = #onnx.dense<tensor<4xui8>, "0x00010203">} : (tensor<4x!quant.uniform<i8, 0.1, 0>>) -> tensor<4x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// weights must be symmetric (zero point 0)
func.func @f(%x: tensor<1x4x!quant.uniform<i8, 0.5, 3>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0102030405060708">} : () -> tensor<2x4x!quant.uniform<i8, 0.1, 1>>
  // expected-error @+1 {{quant.fully_connected: weights must be signed with zero point 0 (symmetric)}}
  %r = quant.fully_connected %x, %w {acc_bits = 32 : i64} : (tensor<1x4x!quant.uniform<i8, 0.5, 3>>, tensor<2x4x!quant.uniform<i8, 0.1, 1>>) -> tensor<1x2x!quant.uniform<i8, 0.25, -1>>
  func.return
}

// -----

// weights must be signed
func.func @f(%x: tensor<1x4x!quant.uniform<i8, 0.5, 3>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0102030405060708">} : () -> tensor<2x4x!quant.uniform<u8, 0.1, 0>>
  // expected-error @+1 {{weights must be signed with zero point 0 (symmetric)}}
  %r = quant.fully_connected %x, %w {acc_bits = 32 : i64} : (tensor<1x4x!quant.uniform<i8, 0.5, 3>>, tensor<2x4x!quant.uniform<u8, 0.1, 0>>) -> tensor<1x2x!quant.uniform<i8, 0.25, -1>>
  func.return
}

// -----

// per-channel weights run along the output channels
func.func @f(%x: tensor<1x4x!quant.uniform<i8, 0.5, 3>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0102030405060708">} : () -> tensor<2x4x!quant.uniform<i8:1, [0.1, 0.1, 0.1, 0.1], [0, 0, 0, 0]>>
  // expected-error @+1 {{weights must be quantized along the output-channel axis 0, not 1}}
  %r = quant.fully_connected %x, %w {acc_bits = 32 : i64} : (tensor<1x4x!quant.uniform<i8, 0.5, 3>>, tensor<2x4x!quant.uniform<i8:1, [0.1, 0.1, 0.1, 0.1], [0, 0, 0, 0]>>) -> tensor<1x2x!quant.uniform<i8, 0.25, -1>>
  func.return
}

// -----

// weight widths are 2, 4, 8, 16
func.func @f(%x: tensor<1x1x!quant.uniform<i8, 0.5, 3>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0102030405060708">} : () -> tensor<2x1x!quant.uniform<i32, 0.1, 0>>
  // expected-error @+1 {{weights must be 2, 4, 8 or 16-bit}}
  %r = quant.fully_connected %x, %w {acc_bits = 32 : i64} : (tensor<1x1x!quant.uniform<i8, 0.5, 3>>, tensor<2x1x!quant.uniform<i32, 0.1, 0>>) -> tensor<1x2x!quant.uniform<i8, 0.25, -1>>
  func.return
}

// -----

// weights of rank 1
func.func @f(%x: tensor<1x4x!quant.uniform<i8, 0.5, 3>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0102030405060708">} : () -> tensor<8x!quant.uniform<i8, 0.1, 0>>
  // expected-error @+1 {{weights must have rank 2 or more, got [8]}}
  %r = quant.fully_connected %x, %w {acc_bits = 32 : i64} : (tensor<1x4x!quant.uniform<i8, 0.5, 3>>, tensor<8x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x2x!quant.uniform<i8, 0.25, -1>>
  func.return
}

// -----

// bias must be i32
func.func @f(%x: tensor<1x4x!quant.uniform<i8, 0.5, 3>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0102030405060708">} : () -> tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>
  %b = quant.constant {packed = #onnx.dense<tensor<4xui8>, "0x01000200">} : () -> tensor<2x!quant.uniform<i16:0, [0.05, 0.1], [0, 0]>>
  // expected-error @+1 {{bias must be !quant.uniform<i32, ...> with zero point 0}}
  %r = quant.fully_connected %x, %w, %b {acc_bits = 32 : i64} : (tensor<1x4x!quant.uniform<i8, 0.5, 3>>, tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>, tensor<2x!quant.uniform<i16:0, [0.05, 0.1], [0, 0]>>) -> tensor<1x2x!quant.uniform<i8, 0.25, -1>>
  func.return
}

// -----

// bias zero point must be 0
func.func @f(%x: tensor<1x4x!quant.uniform<i8, 0.5, 3>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0102030405060708">} : () -> tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>
  %b = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0100000002000000">} : () -> tensor<2x!quant.uniform<i32:0, [0.05, 0.1], [0, 1]>>
  // expected-error @+1 {{bias must be !quant.uniform<i32, ...> with zero point 0}}
  %r = quant.fully_connected %x, %w, %b {acc_bits = 32 : i64} : (tensor<1x4x!quant.uniform<i8, 0.5, 3>>, tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>, tensor<2x!quant.uniform<i32:0, [0.05, 0.1], [0, 1]>>) -> tensor<1x2x!quant.uniform<i8, 0.25, -1>>
  func.return
}

// -----

// bias scale must be s_x * s_w[c]
func.func @f(%x: tensor<1x4x!quant.uniform<i8, 0.5, 3>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0102030405060708">} : () -> tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>
  %b = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0100000002000000">} : () -> tensor<2x!quant.uniform<i32:0, [0.05, 0.2], [0, 0]>>
  // expected-error @+1 {{bias scales must equal input scale x weight scales}}
  %r = quant.fully_connected %x, %w, %b {acc_bits = 32 : i64} : (tensor<1x4x!quant.uniform<i8, 0.5, 3>>, tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>, tensor<2x!quant.uniform<i32:0, [0.05, 0.2], [0, 0]>>) -> tensor<1x2x!quant.uniform<i8, 0.25, -1>>
  func.return
}

// -----

// per-tensor bias against per-channel weight scales
func.func @f(%x: tensor<1x4x!quant.uniform<i8, 0.5, 3>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0102030405060708">} : () -> tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>
  %b = quant.constant {packed = #onnx.dense<tensor<4xui8>, "0x01000000">} : () -> tensor<1x!quant.uniform<i32, 0.05, 0>>
  // expected-error @+1 {{bias scales must equal input scale x weight scales}}
  %r = quant.fully_connected %x, %w, %b {acc_bits = 32 : i64} : (tensor<1x4x!quant.uniform<i8, 0.5, 3>>, tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>, tensor<1x!quant.uniform<i32, 0.05, 0>>) -> tensor<1x2x!quant.uniform<i8, 0.25, -1>>
  func.return
}

// -----

// one bias per output channel
func.func @f(%x: tensor<1x4x!quant.uniform<i8, 0.5, 3>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0102030405060708">} : () -> tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>
  %b = quant.constant {packed = #onnx.dense<tensor<12xui8>, "0x010000000200000003000000">} : () -> tensor<3x!quant.uniform<i32:0, [0.05, 0.1, 0.1], [0, 0, 0]>>
  // expected-error @+1 {{bias of shape [3] must hold one value per output channel (2) or one for all}}
  %r = quant.fully_connected %x, %w, %b {acc_bits = 32 : i64} : (tensor<1x4x!quant.uniform<i8, 0.5, 3>>, tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>, tensor<3x!quant.uniform<i32:0, [0.05, 0.1, 0.1], [0, 0, 0]>>) -> tensor<1x2x!quant.uniform<i8, 0.25, -1>>
  func.return
}

// -----

// acc_bits is required
func.func @f(%x: tensor<1x4x!quant.uniform<i8, 0.5, 3>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0102030405060708">} : () -> tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>
  // expected-error @+1 {{acc_bits must be 32 or 64, got None}}
  %r = quant.fully_connected %x, %w  : (tensor<1x4x!quant.uniform<i8, 0.5, 3>>, tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>) -> tensor<1x2x!quant.uniform<i8, 0.25, -1>>
  func.return
}

// -----

// acc_bits is 32 or 64
func.func @f(%x: tensor<1x4x!quant.uniform<i8, 0.5, 3>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0102030405060708">} : () -> tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>
  // expected-error @+1 {{acc_bits must be 32 or 64, got 16}}
  %r = quant.fully_connected %x, %w {acc_bits = 16 : i64} : (tensor<1x4x!quant.uniform<i8, 0.5, 3>>, tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>) -> tensor<1x2x!quant.uniform<i8, 0.25, -1>>
  func.return
}

// -----

// acc_bits too small for the proven accumulator bound
func.func @f(%x: tensor<1x3x!quant.uniform<i16, 0.5, 0>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<6xui8>, "0xFF7FFF7FFF7F">} : () -> tensor<1x3x!quant.uniform<i16, 0.001, 0>>
  // expected-error @+1 {{accumulator may reach 3221127168 > 2^31-1; acc_bits must be 64}}
  %r = quant.fully_connected %x, %w {acc_bits = 32 : i64} : (tensor<1x3x!quant.uniform<i16, 0.5, 0>>, tensor<1x3x!quant.uniform<i16, 0.001, 0>>) -> tensor<1x1x!quant.uniform<i16, 1.0, 0>>
  func.return
}

// -----

// activations are signed
func.func @f(%x: tensor<1x4x!quant.uniform<u8, 0.5, 3>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0102030405060708">} : () -> tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>
  // expected-error @+1 {{operand 0 must be a signed 4, 8 or 16-bit activation}}
  %r = quant.fully_connected %x, %w {acc_bits = 32 : i64} : (tensor<1x4x!quant.uniform<u8, 0.5, 3>>, tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>) -> tensor<1x2x!quant.uniform<i8, 0.25, -1>>
  func.return
}

// -----

// activations are 4, 8 or 16-bit
func.func @f(%x: tensor<1x4x!quant.uniform<i2, 0.5, 0>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0102030405060708">} : () -> tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>
  // expected-error @+1 {{operand 0 must be a signed 4, 8 or 16-bit activation}}
  %r = quant.fully_connected %x, %w {acc_bits = 32 : i64} : (tensor<1x4x!quant.uniform<i2, 0.5, 0>>, tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>) -> tensor<1x2x!quant.uniform<i8, 0.25, -1>>
  func.return
}

// -----

// the result is an activation too
func.func @f(%x: tensor<1x4x!quant.uniform<i8, 0.5, 3>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0102030405060708">} : () -> tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>
  // expected-error @+1 {{result must be a signed 4, 8 or 16-bit activation}}
  %r = quant.fully_connected %x, %w {acc_bits = 32 : i64} : (tensor<1x4x!quant.uniform<i8, 0.5, 3>>, tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>) -> tensor<1x2x!quant.uniform<i32, 0.5, 0>>
  func.return
}

// -----

// the input is per tensor
func.func @f(%x: tensor<1x4x!quant.uniform<i8:1, [0.5, 0.5, 0.5, 0.5], [0, 0, 0, 0]>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0102030405060708">} : () -> tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>
  // expected-error @+1 {{operand 0 must be quantized per tensor}}
  %r = quant.fully_connected %x, %w {acc_bits = 32 : i64} : (tensor<1x4x!quant.uniform<i8:1, [0.5, 0.5, 0.5, 0.5], [0, 0, 0, 0]>>, tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>) -> tensor<1x2x!quant.uniform<i8, 0.25, -1>>
  func.return
}

// -----

// act_min below the result's range
func.func @f(%x: tensor<1x4x!quant.uniform<i8, 0.5, 3>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0102030405060708">} : () -> tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>
  // expected-error @+1 {{activation range [-200, 127] must lie within [-128, 127] of the result}}
  %r = quant.fully_connected %x, %w {acc_bits = 32 : i64, act_min = -200 : i64} : (tensor<1x4x!quant.uniform<i8, 0.5, 3>>, tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>) -> tensor<1x2x!quant.uniform<i8, 0.25, -1>>
  func.return
}

// -----

// act_max above the result's range
func.func @f(%x: tensor<1x4x!quant.uniform<i8, 0.5, 3>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0102030405060708">} : () -> tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>
  // expected-error @+1 {{activation range [-128, 128] must lie within [-128, 127] of the result}}
  %r = quant.fully_connected %x, %w {acc_bits = 32 : i64, act_max = 128 : i64} : (tensor<1x4x!quant.uniform<i8, 0.5, 3>>, tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>) -> tensor<1x2x!quant.uniform<i8, 0.25, -1>>
  func.return
}

// -----

// fully_connected shapes
func.func @f(%x: tensor<1x4x!quant.uniform<i8, 0.5, 3>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0102030405060708">} : () -> tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>
  // expected-error @+1 {{shapes [1, 4] x [2, 4]^T -> [1, 3] do not multiply}}
  %r = quant.fully_connected %x, %w {acc_bits = 32 : i64} : (tensor<1x4x!quant.uniform<i8, 0.5, 3>>, tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>) -> tensor<1x3x!quant.uniform<i8, 0.25, -1>>
  func.return
}

// -----

// conv: channels, group and weights must agree
func.func @f(%x: tensor<1x4x5x5x!quant.uniform<i8, 0.5, 0>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<4xui8>, "0x01020304">} : () -> tensor<4x1x1x1x!quant.uniform<i8, 0.1, 0>>
  // expected-error @+1 {{quant.conv: shapes [1, 4, 5, 5] * [4, 1, 1, 1] -> [1, 4, 5, 5] do not form a convolution with group 2}}
  %r = quant.conv %x, %w {group = 2 : i64, acc_bits = 32 : i64} : (tensor<1x4x5x5x!quant.uniform<i8, 0.5, 0>>, tensor<4x1x1x1x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x4x5x5x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// conv: rank-1 operands are no convolution
func.func @f(%x: tensor<4x!quant.uniform<i8, 0.1, 0>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<4xui8>, "0x01020304">} : () -> tensor<4x1x!quant.uniform<i8, 0.1, 0>>
  // expected-error @+1 {{do not form a convolution with group 1}}
  %r = quant.conv %x, %w {acc_bits = 32 : i64} : (tensor<4x!quant.uniform<i8, 0.1, 0>>, tensor<4x1x!quant.uniform<i8, 0.1, 0>>) -> tensor<4x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// add: operands must broadcast
func.func @f(%a: tensor<2x3x!quant.uniform<i8, 0.1, 0>>, %b: tensor<4x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.add: operand shapes [(2, 3), (4,)] do not broadcast}}
  %r = quant.add %a, %b : (tensor<2x3x!quant.uniform<i8, 0.1, 0>>, tensor<4x!quant.uniform<i8, 0.1, 0>>) -> tensor<2x3x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// mul: the result has the broadcast shape
func.func @f(%a: tensor<2x3x!quant.uniform<i8, 0.1, 0>>, %b: tensor<3x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.mul: result shape must be the broadcast shape [2, 3]}}
  %r = quant.mul %a, %b : (tensor<2x3x!quant.uniform<i8, 0.1, 0>>, tensor<3x!quant.uniform<i8, 0.1, 0>>) -> tensor<3x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// mul: a 16-bit product beyond int32
func.func @f(%a: tensor<4x!quant.uniform<i16, 0.01, -30000>>) {
  // expected-error @+1 {{quant.mul: the product (a - zp_a)(b - zp_b) may reach 3939696289, beyond int32}}
  %r = quant.mul %a, %a : (tensor<4x!quant.uniform<i16, 0.01, -30000>>, tensor<4x!quant.uniform<i16, 0.01, -30000>>) -> tensor<4x!quant.uniform<i16, 1.0, 0>>
  func.return
}

// -----

// add is per tensor
func.func @f(%a: tensor<2x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>) {
  // expected-error @+1 {{quant.add: operand 0 must be quantized per tensor}}
  %r = quant.add %a, %a : (tensor<2x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>, tensor<2x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>) -> tensor<2x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// clamp: act_min above act_max
func.func @f(%a: tensor<4x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.clamp: activation range [10, 5] must lie within [-128, 127] of the result}}
  %r = quant.clamp %a {act_min = 10 : i64, act_max = 5 : i64} : (tensor<4x!quant.uniform<i8, 0.1, 0>>) -> tensor<4x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// clamp keeps the quantization
func.func @f(%a: tensor<4x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.clamp: result must keep the operand's quantization}}
  %r = quant.clamp %a : (tensor<4x!quant.uniform<i8, 0.1, 0>>) -> tensor<4x!quant.uniform<i8, 0.2, 0>>
  func.return
}

// -----

// lookup: inputs of at most 8 bits
func.func @f(%a: tensor<4x!quant.uniform<i16, 0.5, 0>>) {
  // expected-error @+1 {{quant.lookup: lookup tables take inputs of at most 8 bits, got 16}}
  %r = quant.lookup %a {table = #onnx.dense<tensor<2xi8>, "0x0001">} : (tensor<4x!quant.uniform<i16, 0.5, 0>>) -> tensor<4x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// lookup: one entry per input code
func.func @f(%a: tensor<4x!quant.uniform<i4, 0.5, 0>>) {
  // expected-error @+1 {{quant.lookup: 'table' must hold 16 entries}}
  %r = quant.lookup %a {table = #onnx.dense<tensor<8xi8>, "0x0001020304050607">} : (tensor<4x!quant.uniform<i4, 0.5, 0>>) -> tensor<4x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// lookup: the table is required
func.func @f(%a: tensor<4x!quant.uniform<i4, 0.5, 0>>) {
  // expected-error @+1 {{'table' must hold 16 entries}}
  %r = quant.lookup %a : (tensor<4x!quant.uniform<i4, 0.5, 0>>) -> tensor<4x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// lookup: entries in the result's storage type
func.func @f(%a: tensor<4x!quant.uniform<i4, 0.5, 0>>) {
  // expected-error @+1 {{quant.lookup: 'table' entries must be uint8, got int8}}
  %r = quant.lookup %a {table = #onnx.dense<tensor<16xi8>, "0x000102030405060708090A0B0C0D0E0F">} : (tensor<4x!quant.uniform<i4, 0.5, 0>>) -> tensor<4x!quant.uniform<u8, 0.5, 0>>
  func.return
}

// -----

// lookup: entries within the result's range
func.func @f(%a: tensor<4x!quant.uniform<i4, 0.5, 0>>) {
  // expected-error @+1 {{quant.lookup: 'table' entries leave the result's range}}
  %r = quant.lookup %a {table = #onnx.dense<tensor<16xi8>, "0x000102030405060708090A0B0C0D0E0F">} : (tensor<4x!quant.uniform<i4, 0.5, 0>>) -> tensor<4x!quant.uniform<i4, 0.5, 0>>
  func.return
}

// -----

// lookup keeps the shape
func.func @f(%a: tensor<4x!quant.uniform<i4, 0.5, 0>>) {
  // expected-error @+1 {{quant.lookup: result shape must equal the operand's}}
  %r = quant.lookup %a {table = #onnx.dense<tensor<16xi8>, "0x000102030405060708090A0B0C0D0E0F">} : (tensor<4x!quant.uniform<i4, 0.5, 0>>) -> tensor<5x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// concat: one bit width
func.func @f(%a: tensor<2x!quant.uniform<i8, 0.1, 0>>, %b: tensor<2x!quant.uniform<i4, 0.5, 0>>) {
  // expected-error @+1 {{quant.concat: inputs and result must share one bit width, got [4, 8]}}
  %r = quant.concat %a, %b {axis = 0 : i64} : (tensor<2x!quant.uniform<i8, 0.1, 0>>, tensor<2x!quant.uniform<i4, 0.5, 0>>) -> tensor<4x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// concat: quantized operands
func.func @f(%a: tensor<2x!quant.uniform<i8, 0.1, 0>>, %b: tensor<2xf32>) {
  // expected-error @+1 {{quant.concat: operand 1 must be a quantized tensor}}
  %r = quant.concat %a, %b {axis = 0 : i64} : (tensor<2x!quant.uniform<i8, 0.1, 0>>, tensor<2xf32>) -> tensor<4x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// max_pool keeps the quantization
func.func @f(%a: tensor<1x2x4x4x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.max_pool: result must keep the operand's quantization}}
  %r = quant.max_pool %a {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>} : (tensor<1x2x4x4x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x2x2x2x!quant.uniform<i8, 0.1, 1>>
  func.return
}

// -----

// avg_pool: no ceil_mode
func.func @f(%a: tensor<1x2x4x4x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.avg_pool: the integer form has no ceil_mode or dilations}}
  %r = quant.avg_pool %a {kernel_shape = array<i64: 3, 3>, strides = array<i64: 2, 2>, ceil_mode = 1 : i64} : (tensor<1x2x4x4x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x2x2x2x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// avg_pool: no dilations
func.func @f(%a: tensor<1x2x4x4x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.avg_pool: the integer form has no ceil_mode or dilations}}
  %r = quant.avg_pool %a {kernel_shape = array<i64: 2, 2>, dilations = array<i64: 2, 2>} : (tensor<1x2x4x4x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x2x2x2x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// global_avg_pool: result shape
func.func @f(%a: tensor<1x2x4x4x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.global_avg_pool: result shape must be [1, 2, 1, 1]}}
  %r = quant.global_avg_pool %a : (tensor<1x2x4x4x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x2x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// global_avg_pool: a 16-bit window sum beyond int32
func.func @f(%a: tensor<1x1x256x256x!quant.uniform<i16, 0.5, 0>>) {
  // expected-error @+1 {{quant.global_avg_pool: the sum over 65536 positions may reach 2147483648, beyond int32}}
  %r = quant.global_avg_pool %a : (tensor<1x1x256x256x!quant.uniform<i16, 0.5, 0>>) -> tensor<1x1x1x1x!quant.uniform<i16, 0.5, 0>>
  func.return
}

// -----

// pad keeps the quantization
func.func @f(%a: tensor<2x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.pad: result must keep the operand's quantization}}
  %r = quant.pad %a {pads = array<i64: 1, 1>} : (tensor<2x!quant.uniform<i8, 0.1, 0>>) -> tensor<4x!quant.uniform<i8, 0.1, 5>>
  func.return
}

// -----

// resize: nearest only
func.func @f(%a: tensor<1x2x4x4x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.resize: only mode 'nearest' has an integer form}}
  %r = quant.resize %a {mode = "linear"} : (tensor<1x2x4x4x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x2x8x8x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// reshape: element count
func.func @f(%a: tensor<2x3x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.reshape: cannot reshape [2, 3] to [4]}}
  %r = quant.reshape %a : (tensor<2x3x!quant.uniform<i8, 0.1, 0>>) -> tensor<4x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// reshape: per-tensor operands only
func.func @f(%a: tensor<2x3x!quant.uniform<i8:1, [0.1, 0.2, 0.3], [0, 0, 0]>>) {
  // expected-error @+1 {{quant.reshape: result must keep the operand's quantization}}
  %r = quant.reshape %a : (tensor<2x3x!quant.uniform<i8:1, [0.1, 0.2, 0.3], [0, 0, 0]>>) -> tensor<6x!quant.uniform<i8:0, [0.1, 0.2, 0.3, 0.1, 0.2, 0.3], [0, 0, 0, 0, 0, 0]>>
  func.return
}

// -----

// transpose: perm is a permutation
func.func @f(%a: tensor<2x3x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.transpose: perm [0, 0] does not map [2, 3] to [2, 2]}}
  %r = quant.transpose %a {perm = array<i64: 0, 0>} : (tensor<2x3x!quant.uniform<i8, 0.1, 0>>) -> tensor<2x2x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// transpose: perm maps the shape
func.func @f(%a: tensor<2x3x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.transpose: perm [0, 1] does not map [2, 3] to [3, 2]}}
  %r = quant.transpose %a {perm = array<i64: 0, 1>} : (tensor<2x3x!quant.uniform<i8, 0.1, 0>>) -> tensor<3x2x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// transpose: perm is required
func.func @f(%a: tensor<2x3x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.transpose: perm None does not map}}
  %r = quant.transpose %a : (tensor<2x3x!quant.uniform<i8, 0.1, 0>>) -> tensor<3x2x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// requantize: a ratio just below 2^30 rounds up to a 31-bit shift
func.func @f(%a: tensor<2x!quant.uniform<i8, 1073741823.9990234, 0>>) {
  // expected-error @+1 {{quant.requantize: requantization multiplier 1073741823.9990234 is too large for a 32-bit shift}}
  %r = quant.requantize %a : (tensor<2x!quant.uniform<i8, 1073741823.9990234, 0>>) -> tensor<2x!quant.uniform<i8, 1.0, 0>>
  func.return
}

// -----

// acc_bits = 64: the multiplier s_x s_w / s_y must be below 128
func.func @f(%x: tensor<1x4x!quant.uniform<i8, 100.0, 0>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0102030405060708">} : () -> tensor<2x4x!quant.uniform<i8, 10.0, 0>>
  // expected-error @+1 {{quant.fully_connected: requantization multiplier 1000.0 must be below 128 with acc_bits = 64}}
  %r = quant.fully_connected %x, %w {acc_bits = 64 : i64} : (tensor<1x4x!quant.uniform<i8, 100.0, 0>>, tensor<2x4x!quant.uniform<i8, 10.0, 0>>) -> tensor<1x2x!quant.uniform<i8, 1.0, 0>>
  func.return
}

// -----

// concat: a requantized input's multiplier must be representable
func.func @f(%a: tensor<2x!quant.uniform<i8, 1.0e+10, 0>>, %b: tensor<2x!quant.uniform<i8, 0.1, 0>>) {
  // expected-error @+1 {{quant.concat: requantization multiplier 100000000000.0 is too large for a 32-bit shift}}
  %r = quant.concat %a, %b {axis = 0 : i64} : (tensor<2x!quant.uniform<i8, 1.0e+10, 0>>, tensor<2x!quant.uniform<i8, 0.1, 0>>) -> tensor<4x!quant.uniform<i8, 0.1, 0>>
  func.return
}

// -----

// valid: acc_bits = 32 holds when no input can reach 2^31 (mixed-sign weights)
func.func @f(%x: tensor<1x4x!quant.uniform<i16, 0.5, 0>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0xFF7F01000180FFFF">} : () -> tensor<1x4x!quant.uniform<i16, 0.001, 0>>
  %r = quant.fully_connected %x, %w {acc_bits = 32 : i64} : (tensor<1x4x!quant.uniform<i16, 0.5, 0>>, tensor<1x4x!quant.uniform<i16, 0.001, 0>>) -> tensor<1x1x!quant.uniform<i16, 1.0, 0>>
  func.return
}

// -----

func.func @f(%x: tensor<1x2x4x4x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x2x3x3x!quant.uniform<i8, 0.1, 0>> {
  // expected-error @+1 {{quant.max_pool: result shape [1, 2, 3, 3] must be [1, 2, 2, 2]}}
  %y = quant.max_pool %x {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>} : (tensor<1x2x4x4x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x2x3x3x!quant.uniform<i8, 0.1, 0>>
  func.return %y : tensor<1x2x3x3x!quant.uniform<i8, 0.1, 0>>
}

// -----

func.func @f(%x: tensor<1x2x4x4x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x2x6x6x!quant.uniform<i8, 0.1, 0>> {
  // expected-error @+1 {{quant.pad: result shape [1, 2, 6, 6] must be [1, 2, 5, 5]}}
  %y = quant.pad %x {pads = array<i64: 0, 0, 1, 0, 0, 0, 0, 1>} : (tensor<1x2x4x4x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x2x6x6x!quant.uniform<i8, 0.1, 0>>
  func.return %y : tensor<1x2x6x6x!quant.uniform<i8, 0.1, 0>>
}

// -----

func.func @f(%x: tensor<1x2x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x5x!quant.uniform<i8, 0.1, 0>> {
  // expected-error @+1 {{do not concatenate to [1, 5] along axis 1}}
  %y = quant.concat %x, %x {axis = 1 : i64} : (tensor<1x2x!quant.uniform<i8, 0.1, 0>>, tensor<1x2x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x5x!quant.uniform<i8, 0.1, 0>>
  func.return %y : tensor<1x5x!quant.uniform<i8, 0.1, 0>>
}
