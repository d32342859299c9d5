// RUN: qcc-opt %s -p fuse-residual-add | filecheck %s

// A residual add whose operand is a convolution's only use runs in that convolution's
// epilogue: the add records which operand (qcc.epilogue_of), the convolution names the add
// for the report (qcc.fused); both ops stay, so the semantics do not change. An add of a
// convolution result that has another user, and a broadcasting add, are left alone.

func.func @main(%x: tensor<1x4x5x5x!quant.uniform<i8, 0.5, 0>>, %v: tensor<1x4x1x1x!quant.uniform<i8, 0.5, 0>>) -> (tensor<1x4x5x5x!quant.uniform<i8, 0.2, 1>>, tensor<1x4x5x5x!quant.uniform<i8, 0.2, 1>>, tensor<1x4x5x5x!quant.uniform<i8, 0.1, 0>>, tensor<1x4x5x5x!quant.uniform<i8, 0.2, 1>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<4xui8>, "0x0102FF03">} : () -> tensor<4x1x1x1x!quant.uniform<i8, 0.1, 0>>
  %c1 = quant.conv %x, %w {group = 4 : i64, acc_bits = 32 : i64, qcc.name = "conv1"} : (tensor<1x4x5x5x!quant.uniform<i8, 0.5, 0>>, tensor<4x1x1x1x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x4x5x5x!quant.uniform<i8, 0.1, 0>>
  %a1 = quant.add %x, %c1 {qcc.name = "add1"} : (tensor<1x4x5x5x!quant.uniform<i8, 0.5, 0>>, tensor<1x4x5x5x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x4x5x5x!quant.uniform<i8, 0.2, 1>>
  %c2 = quant.conv %x, %w {group = 4 : i64, acc_bits = 32 : i64, qcc.name = "conv2"} : (tensor<1x4x5x5x!quant.uniform<i8, 0.5, 0>>, tensor<4x1x1x1x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x4x5x5x!quant.uniform<i8, 0.1, 0>>
  %a2 = quant.add %c2, %x {qcc.name = "add2"} : (tensor<1x4x5x5x!quant.uniform<i8, 0.1, 0>>, tensor<1x4x5x5x!quant.uniform<i8, 0.5, 0>>) -> tensor<1x4x5x5x!quant.uniform<i8, 0.2, 1>>
  %c3 = quant.conv %x, %w {group = 4 : i64, acc_bits = 32 : i64, qcc.name = "conv3"} : (tensor<1x4x5x5x!quant.uniform<i8, 0.5, 0>>, tensor<4x1x1x1x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x4x5x5x!quant.uniform<i8, 0.1, 0>>
  %c4 = quant.conv %x, %w {group = 4 : i64, acc_bits = 32 : i64, qcc.name = "conv4"} : (tensor<1x4x5x5x!quant.uniform<i8, 0.5, 0>>, tensor<4x1x1x1x!quant.uniform<i8, 0.1, 0>>) -> tensor<1x4x5x5x!quant.uniform<i8, 0.1, 0>>
  %a4 = quant.add %c4, %v {qcc.name = "add4"} : (tensor<1x4x5x5x!quant.uniform<i8, 0.1, 0>>, tensor<1x4x1x1x!quant.uniform<i8, 0.5, 0>>) -> tensor<1x4x5x5x!quant.uniform<i8, 0.2, 1>>
  %a3 = quant.add %c3, %x {qcc.name = "add3"} : (tensor<1x4x5x5x!quant.uniform<i8, 0.1, 0>>, tensor<1x4x5x5x!quant.uniform<i8, 0.5, 0>>) -> tensor<1x4x5x5x!quant.uniform<i8, 0.2, 1>>
  func.return %a1, %a2, %c3, %a4 : tensor<1x4x5x5x!quant.uniform<i8, 0.2, 1>>, tensor<1x4x5x5x!quant.uniform<i8, 0.2, 1>>, tensor<1x4x5x5x!quant.uniform<i8, 0.1, 0>>, tensor<1x4x5x5x!quant.uniform<i8, 0.2, 1>>
}

// CHECK:      %c1 = quant.conv %x, %w {group = 4 : i64, acc_bits = 32 : i64, qcc.name = "conv1", qcc.fused = "add1"}
// CHECK-NEXT: %a1 = quant.add %x, %c1 {qcc.name = "add1", qcc.epilogue_of = 1 : i64}
// CHECK-NEXT: %c2 = quant.conv %x, %w {group = 4 : i64, acc_bits = 32 : i64, qcc.name = "conv2", qcc.fused = "add2"}
// CHECK-NEXT: %a2 = quant.add %c2, %x {qcc.name = "add2", qcc.epilogue_of = 0 : i64}
// CHECK-NEXT: %c3 = quant.conv %x, %w {group = 4 : i64, acc_bits = 32 : i64, qcc.name = "conv3"}
// CHECK-NEXT: %c4 = quant.conv %x, %w {group = 4 : i64, acc_bits = 32 : i64, qcc.name = "conv4"}
// CHECK-NEXT: %a4 = quant.add %c4, %v {qcc.name = "add4"}
// CHECK-NEXT: %a3 = quant.add %c3, %x {qcc.name = "add3"}
