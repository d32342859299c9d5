// RUN: qcc-opt %s -p fuse-activation | filecheck %s

// A clamp whose operand has one user folds into the producer's act_min/act_max (the
// intersection of both ranges); a clamp of a value used twice stays.

func.func @main(%x: tensor<1x4x!quant.uniform<i8, 0.05, -3>>) -> (tensor<1x4x!quant.uniform<i8, 0.1, -128>>, tensor<1x4x!quant.uniform<i8, 0.05, -3>>, tensor<1x4x!quant.uniform<i8, 0.05, -3>>) {
  %w = quant.constant {packed = #onnx.dense<tensor<16xui8>, "0x01000000000100000000010000000001">} : () -> tensor<4x4x!quant.uniform<i8:0, [0.1, 0.1, 0.1, 0.1], [0, 0, 0, 0]>>
  %y = quant.fully_connected %x, %w {acc_bits = 32 : i64, act_max = 100 : i64, qcc.name = "fc"} : (tensor<1x4x!quant.uniform<i8, 0.05, -3>>, tensor<4x4x!quant.uniform<i8:0, [0.1, 0.1, 0.1, 0.1], [0, 0, 0, 0]>>) -> tensor<1x4x!quant.uniform<i8, 0.1, -128>>
  %r = quant.clamp %y {act_min = -128 : i64, act_max = 120 : i64, qcc.name = "relu6"} : (tensor<1x4x!quant.uniform<i8, 0.1, -128>>) -> tensor<1x4x!quant.uniform<i8, 0.1, -128>>
  %s = quant.add %x, %x : (tensor<1x4x!quant.uniform<i8, 0.05, -3>>, tensor<1x4x!quant.uniform<i8, 0.05, -3>>) -> tensor<1x4x!quant.uniform<i8, 0.05, -3>>
  %t = quant.clamp %s {act_min = -3 : i64, act_max = 127 : i64} : (tensor<1x4x!quant.uniform<i8, 0.05, -3>>) -> tensor<1x4x!quant.uniform<i8, 0.05, -3>>
  func.return %r, %t, %s : tensor<1x4x!quant.uniform<i8, 0.1, -128>>, tensor<1x4x!quant.uniform<i8, 0.05, -3>>, tensor<1x4x!quant.uniform<i8, 0.05, -3>>
}

// CHECK:      %[[Y:.*]] = quant.fully_connected %x, %w {acc_bits = 32 : i64, act_max = 100 : i64, qcc.name = "fc", act_min = -128 : i64, qcc.fused = "relu6"}
// CHECK-NEXT: %[[S:.*]] = quant.add %x, %x
// CHECK-NEXT: %[[T:.*]] = quant.clamp %[[S]] {act_min = -3 : i64, act_max = 127 : i64}
// CHECK-NEXT: func.return %[[Y]], %[[T]], %[[S]]
