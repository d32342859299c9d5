// RUN: qcc-opt %s | qcc-opt | filecheck %s

// quant.slice (a static window of a tensor) and quant.insert_slice (a tile written
// into its window of a destination, or of a tensor of zero points) round-trip; they
// carry patch-based inference (materialize-patches). Verifier errors: slice-invalid.mlir.

func.func @main(%x: tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>) -> tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>> {
  %t = quant.slice %x {offsets = array<i64: 0, 0, 2, 3>} : (tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>) -> tensor<1x3x4x5x!quant.uniform<i8, 0.05, -7>>
  %a = quant.insert_slice %t {offsets = array<i64: 0, 0, 0, 0>} : (tensor<1x3x4x5x!quant.uniform<i8, 0.05, -7>>) -> tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>
  %b = quant.insert_slice %a, %t {offsets = array<i64: 0, 0, 4, 3>} : (tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>, tensor<1x3x4x5x!quant.uniform<i8, 0.05, -7>>) -> tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>
  func.return %b : tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>
}

// CHECK:      %t = quant.slice %x {offsets = array<i64: 0, 0, 2, 3>} : (tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>) -> tensor<1x3x4x5x!quant.uniform<i8, 0.05, -7>>
// CHECK-NEXT: %a = quant.insert_slice %t {offsets = array<i64: 0, 0, 0, 0>} : (tensor<1x3x4x5x!quant.uniform<i8, 0.05, -7>>) -> tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>
// CHECK-NEXT: %b = quant.insert_slice %a, %t {offsets = array<i64: 0, 0, 4, 3>} : (tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>, tensor<1x3x4x5x!quant.uniform<i8, 0.05, -7>>) -> tensor<1x3x8x8x!quant.uniform<i8, 0.05, -7>>
