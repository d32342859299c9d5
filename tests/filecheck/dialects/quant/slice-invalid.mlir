// RUN: qcc-opt %s --split-input-file --verify-diagnostics

// Verifier errors of quant.slice and quant.insert_slice.

func.func @f(%x: tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>) {
  // expected-error @+1 {{quant.slice: a window [1, 3, 4, 5] at offsets [0, 0, 5, 3] does not fit in [1, 3, 8, 8]}}
  %t = quant.slice %x {offsets = array<i64: 0, 0, 5, 3>} : (tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>) -> tensor<1x3x4x5x!quant.uniform<i8, 0.05, -7>>
  func.return
}

// -----

func.func @f(%x: tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>) {
  // expected-error @+1 {{quant.slice: offsets must hold 4 non-negative values, got [0, 2, 3]}}
  %t = quant.slice %x {offsets = array<i64: 0, 2, 3>} : (tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>) -> tensor<1x3x4x5x!quant.uniform<i8, 0.05, -7>>
  func.return
}

// -----

func.func @f(%x: tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>) {
  // expected-error @+1 {{quant.slice: result must keep the operand's quantization}}
  %t = quant.slice %x {offsets = array<i64: 0, 0, 0, 0>} : (tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>) -> tensor<1x3x4x5x!quant.uniform<i8, 0.1, -7>>
  func.return
}

// -----

func.func @f(%x: tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>, %t: tensor<1x3x4x5x!quant.uniform<i8, 0.05, -7>>) {
  // expected-error @+1 {{quant.insert_slice: result shape [1, 3, 8, 9] must equal dest's [1, 3, 8, 8]}}
  %y = quant.insert_slice %x, %t {offsets = array<i64: 0, 0, 0, 0>} : (tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>, tensor<1x3x4x5x!quant.uniform<i8, 0.05, -7>>) -> tensor<1x3x8x9x!quant.uniform<i8, 0.05, -7>>
  func.return
}

// -----

func.func @f(%t: tensor<1x3x4x5x!quant.uniform<i8, 0.05, -7>>) {
  // expected-error @+1 {{quant.insert_slice: a window [1, 3, 4, 5] at offsets [0, 0, 0, 4] does not fit in [1, 3, 8, 8]}}
  %y = quant.insert_slice %t {offsets = array<i64: 0, 0, 0, 4>} : (tensor<1x3x4x5x!quant.uniform<i8, 0.05, -7>>) -> tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>
  func.return
}

// -----

func.func @f(%x: tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>, %t: tensor<1x3x4x5x!quant.uniform<i8, 0.05, 0>>) {
  // expected-error @+1 {{quant.insert_slice: result must keep the operand's quantization}}
  %y = quant.insert_slice %x, %t {offsets = array<i64: 0, 0, 0, 0>} : (tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>, tensor<1x3x4x5x!quant.uniform<i8, 0.05, 0>>) -> tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>
  func.return
}

// -----

func.func @f(%x: tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>) {
  // expected-error @+1 {{quant.insert_slice: takes 1..2 operands, got 3}}
  %y = quant.insert_slice %x, %x, %x {offsets = array<i64: 0, 0, 0, 0>} : (tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>, tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>, tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>) -> tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>
  func.return
}
