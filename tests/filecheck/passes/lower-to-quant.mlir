// RUN: qcc-opt %s -p lower-to-quant | filecheck %s
// RUN: qcc-opt %s -p lower-to-quant --print-large-constants | qcc-opt --print-op-generic --print-large-constants | qcc-opt > /dev/null

// Conv (4-bit weights, 8-bit activations) followed by ReLU: the conv result takes the ReLU's range, the
// clamp sits at the zero point; Add joins both integer values; Softmax becomes the integer quant.softmax
// (result scale 2^-8, zero point -128, exp table of 256 int32 entries); Sin has no integer form and stays
// float between a dequantize and the function's float result.

builtin.module attributes {onnx.opset = 18 : i64} {
  func.func @main(%x: tensor<1x2x2x2xf32> {qcc.name = "x", qcc.ranges = {i8 = array<f64: -1.0, 1.0>}}) -> (tensor<1x2x2x2xf32> {qcc.name = "y"}) {
    %w = onnx.Constant {value = #onnx.dense<tensor<2x2x1x1xf32>, "0x0000803F00000040000080BF0000003F">} : () -> tensor<2x2x1x1xf32>
    %b = onnx.Constant {value = #onnx.dense<tensor<2xf32>, "0x0000003F000080BF">} : () -> tensor<2xf32>
    %c = onnx.Conv %x, %w, %b {qcc.name = "conv", qcc.w_bits = 4 : i64, qcc.a_bits = 8 : i64, qcc.ranges = {i8 = array<f64: -3.0, 3.0>}} : (tensor<1x2x2x2xf32>, tensor<2x2x1x1xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
    %r = onnx.Relu %c {qcc.name = "relu", qcc.a_bits = 8 : i64, qcc.ranges = {i8 = array<f64: 0.0, 2.55>}} : (tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32>
    %s = onnx.Add %r, %x {qcc.name = "add", qcc.a_bits = 8 : i64, qcc.ranges = {i8 = array<f64: -1.0, 3.0>}} : (tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32>
    %p = onnx.Softmax %s {axis = 1 : i64, qcc.name = "softmax", qcc.ranges = {i8 = array<f64: 0.0, 1.0>}} : (tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32>
    %y = onnx.Sin %p {qcc.name = "sin"} : (tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32>
    func.return %y : tensor<1x2x2x2xf32>
  }
}

// CHECK:      builtin.module attributes {onnx.opset = 18 : i64, qcc.float_ops = ["sin (Sin)"]}
// CHECK:      %[[X:.*]] = quant.quantize %x : (tensor<1x2x2x2xf32>) -> tensor<1x2x2x2x!quant.uniform<i8, 0.00784313725490196, -1>>
// codes [4, 7] and [-7, 4]: 1 x 7/2 = 3.5 rounds away from zero to 4; two 4-bit codes per byte, low nibble first
// CHECK-NEXT: %[[W:.*]] = quant.constant {packed = #onnx.dense<tensor<2xui8>, "0x7449">, qcc.name = "conv.weight"} : () -> tensor<2x2x1x1x!quant.uniform<i4:0, [0.2857142857142857, 0.14285714285714285], [0, 0]>>
// CHECK-NEXT: %[[B:.*]] = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x{{[0-9A-F]+}}">, qcc.name = "conv.bias"} : () -> tensor<2x!quant.uniform<i32:0, [{{.*}}, {{.*}}], [0, 0]>>
// CHECK-NEXT: %[[C:.*]] = quant.conv %[[X]], %[[W]], %[[B]] {acc_bits = 32 : i64, qcc.name = "conv", qcc.w_bits = 4 : i64, qcc.a_bits = 8 : i64} : ({{.*}}) -> tensor<1x2x2x2x!quant.uniform<i8, [[SC:0.0099999999[0-9]*]], -128>>
// CHECK-NEXT: %[[R:.*]] = quant.clamp %[[C]] {act_min = -128 : i64, act_max = 127 : i64, qcc.name = "relu", qcc.a_bits = 8 : i64} : (tensor<1x2x2x2x!quant.uniform<i8, [[SC]], -128>>) -> tensor<1x2x2x2x!quant.uniform<i8, [[SC]], -128>>
// CHECK-NEXT: %[[S:.*]] = quant.add %[[R]], %[[X]] {qcc.name = "add", qcc.a_bits = 8 : i64} : (tensor<1x2x2x2x!quant.uniform<i8, [[SC]], -128>>, tensor<1x2x2x2x!quant.uniform<i8, 0.00784313725490196, -1>>) -> tensor<1x2x2x2x!quant.uniform<i8, 0.01568627450980392, -64>>
// CHECK-NEXT: %[[P:.*]] = quant.softmax %[[S]] {axis = 1 : i64, table = #onnx.dense<tensor<256xi32>, elided>, qcc.name = "softmax"} : (tensor<1x2x2x2x!quant.uniform<i8, 0.01568627450980392, -64>>) -> tensor<1x2x2x2x!quant.uniform<i8, 0.00390625, -128>>
// CHECK-NEXT: %[[D:.*]] = quant.dequantize %[[P]] : (tensor<1x2x2x2x!quant.uniform<i8, 0.00390625, -128>>) -> tensor<1x2x2x2xf32>
// CHECK-NEXT: %y = onnx.Sin %[[D]] {qcc.name = "sin"}
// CHECK-NEXT: func.return %y
// CHECK-NOT:  onnx.Conv
