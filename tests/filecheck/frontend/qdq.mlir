// RUN: %python %inputs/make_model.py qdq %t.onnx
// RUN: qcc-opt %t.onnx | filecheck %s

// Pre-quantized QDQ graphs keep their QuantizeLinear/DequantizeLinear pairs with scalar parameters.

// CHECK:      %s = onnx.Constant {value = #onnx.dense<tensor<f32>, "0xCDCC4C3D">} : () -> tensor<f32>
// CHECK-NEXT: %zp = onnx.Constant {value = #onnx.dense<tensor<i8>, "0x03">} : () -> tensor<i8>
// CHECK-NEXT: %q = onnx.QuantizeLinear %x, %s, %zp {qcc.name = "q"} : (tensor<1x4xf32>, tensor<f32>, tensor<i8>) -> tensor<1x4xi8>
// CHECK-NEXT: %y = onnx.DequantizeLinear %q, %s, %zp {qcc.name = "dq"} : (tensor<1x4xi8>, tensor<f32>, tensor<i8>) -> tensor<1x4xf32>
