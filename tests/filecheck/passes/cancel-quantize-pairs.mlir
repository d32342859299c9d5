// RUN: qcc-opt %s -p cancel-quantize-pairs | filecheck %s

// quantize(dequantize(q)) with q's own parameters is q; a requantize to the same
// parameters is q; x2 into i16 then /2 back to i8 with zero point 3 equals one requantize on every code and
// merges. dequantize(quantize(x)) rounds x and stays, and so does a quantize to other
// parameters and a requantize chain whose double rounding differs (0.1 -> 0.3 -> 0.2).

func.func @main(%q: tensor<1x4x!quant.uniform<i8, 0.1, 0>>, %x: tensor<1x4xf32>) -> (tensor<1x4x!quant.uniform<i8, 0.1, 0>>, tensor<1x4x!quant.uniform<i8, 0.1, 0>>, tensor<1x4x!quant.uniform<i8, 0.1, 3>>, tensor<1x4xf32>, tensor<1x4x!quant.uniform<i8, 0.2, 1>>, tensor<1x4x!quant.uniform<i8, 0.2, 0>>) {
  %d = quant.dequantize %q : (tensor<1x4x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x4xf32>
  %a = quant.quantize %d : (tensor<1x4xf32>) -> tensor<1x4x!quant.uniform<i8, 0.1, 0>>
  %b = quant.requantize %q : (tensor<1x4x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x4x!quant.uniform<i8, 0.1, 0>>
  %w = quant.requantize %q : (tensor<1x4x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x4x!quant.uniform<i16, 0.05, 0>>
  %c = quant.requantize %w {qcc.name = "narrow"} : (tensor<1x4x!quant.uniform<i16, 0.05, 0>>) -> tensor<1x4x!quant.uniform<i8, 0.1, 3>>
  %xq = quant.quantize %x : (tensor<1x4xf32>) -> tensor<1x4x!quant.uniform<i8, 0.1, 0>>
  %e = quant.dequantize %xq : (tensor<1x4x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x4xf32>
  %f = quant.quantize %d : (tensor<1x4xf32>) -> tensor<1x4x!quant.uniform<i8, 0.2, 1>>
  %m = quant.requantize %q : (tensor<1x4x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x4x!quant.uniform<i8, 0.3, 0>>
  %g = quant.requantize %m : (tensor<1x4x!quant.uniform<i8, 0.3, 0>>) -> tensor<1x4x!quant.uniform<i8, 0.2, 0>>
  func.return %a, %b, %c, %e, %f, %g : tensor<1x4x!quant.uniform<i8, 0.1, 0>>, tensor<1x4x!quant.uniform<i8, 0.1, 0>>, tensor<1x4x!quant.uniform<i8, 0.1, 3>>, tensor<1x4xf32>, tensor<1x4x!quant.uniform<i8, 0.2, 1>>, tensor<1x4x!quant.uniform<i8, 0.2, 0>>
}

// CHECK:      %[[D:.*]] = quant.dequantize %q
// CHECK-NEXT: %[[C:.*]] = quant.requantize %q {qcc.name = "narrow"} : (tensor<1x4x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x4x!quant.uniform<i8, 0.1, 3>>
// CHECK-NEXT: %[[XQ:.*]] = quant.quantize %x
// CHECK-NEXT: %[[E:.*]] = quant.dequantize %[[XQ]]
// CHECK-NEXT: %[[F:.*]] = quant.quantize %[[D]]
// CHECK-NEXT: %[[M:.*]] = quant.requantize %q
// CHECK-NEXT: %[[G:.*]] = quant.requantize %[[M]]
// CHECK-NEXT: func.return %q, %q, %[[C]], %[[E]], %[[F]], %[[G]]
