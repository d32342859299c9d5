// RUN: qcc-opt %s --print-large-constants | qcc-opt | filecheck %s
// RUN: qcc-opt %s --print-op-generic --print-large-constants | qcc-opt | filecheck %s
// RUN: qcc-opt %s --print-large-constants | qcc-opt --print-large-constants | filecheck %s --check-prefix=FULL

// The onnx dialect prints ONNX attributes in the attribute dictionary, constants
// as #onnx.dense with the raw little-endian bytes, and omitted inputs as onnx.NoValue.

builtin.module attributes {onnx.opset = 18 : i64} {
  func.func @main(%x: tensor<1x3x8x8xf32> {qcc.name = "x"}) -> (tensor<1x4x4x4xf32> {qcc.name = "y"}) {
    %w = onnx.Constant {value = #onnx.dense<tensor<4x3x3x3xf32>, "0x0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F">} : () -> tensor<4x3x3x3xf32>
    %none = onnx.NoValue : none
    %c = onnx.Conv %x, %w, %none {strides = array<i64: 2, 2>, pads = array<i64: 1, 1, 1, 1>, group = 1 : i64, qcc.name = "conv0"} : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>, none) -> tensor<1x4x4x4xf32>
    %lo = onnx.Constant {value = #onnx.dense<tensor<f32>, "0x00000000">} : () -> tensor<f32>
    %hi = onnx.Constant {value = #onnx.dense<tensor<f32>, "0x0000C040">} : () -> tensor<f32>
    %r = onnx.Clip %c, %lo, %hi : (tensor<1x4x4x4xf32>, tensor<f32>, tensor<f32>) -> tensor<1x4x4x4xf32>
    %s = onnx.HardSwish %r : (tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
    %b = onnx.Constant {value = #onnx.dense<tensor<4x1x1xf32>, "0x000000000000803F0000004000004040">} : () -> tensor<4x1x1xf32>
    %y = onnx.Add %s, %b : (tensor<1x4x4x4xf32>, tensor<4x1x1xf32>) -> tensor<1x4x4x4xf32>
    func.return %y : tensor<1x4x4x4xf32>
  }
}

// CHECK:      builtin.module attributes {onnx.opset = 18 : i64} {
// CHECK-NEXT:   func.func @main(%{{.*}}: tensor<1x3x8x8xf32> {qcc.name = "x"}) -> (tensor<1x4x4x4xf32> {qcc.name = "y"}) {
// CHECK-NEXT:     %{{.*}} = onnx.Constant {value = #onnx.dense<tensor<4x3x3x3xf32>, elided>} : () -> tensor<4x3x3x3xf32>
// CHECK-NEXT:     %[[NONE:.*]] = onnx.NoValue : none
// CHECK-NEXT:     %[[C:.*]] = onnx.Conv %{{.*}}, %{{.*}}, %[[NONE]] {strides = array<i64: 2, 2>, pads = array<i64: 1, 1, 1, 1>, group = 1 : i64, qcc.name = "conv0"} : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>, none) -> tensor<1x4x4x4xf32>
// CHECK:          onnx.Constant {value = #onnx.dense<tensor<f32>, "0x0000C040">} : () -> tensor<f32>
// CHECK-NEXT:     %[[R:.*]] = onnx.Clip %[[C]], %{{.*}}, %{{.*}} : (tensor<1x4x4x4xf32>, tensor<f32>, tensor<f32>) -> tensor<1x4x4x4xf32>
// CHECK-NEXT:     %[[S:.*]] = onnx.HardSwish %[[R]] : (tensor<1x4x4x4xf32>) -> tensor<1x4x4x4xf32>
// CHECK-NEXT:     %[[B:.*]] = onnx.Constant {value = #onnx.dense<tensor<4x1x1xf32>, "0x000000000000803F0000004000004040">}
// CHECK-NEXT:     %[[Y:.*]] = onnx.Add %[[S]], %[[B]] : (tensor<1x4x4x4xf32>, tensor<4x1x1xf32>) -> tensor<1x4x4x4xf32>
// CHECK-NEXT:     func.return %[[Y]] : tensor<1x4x4x4xf32>

// Printed in full on request, byte for byte:
// FULL: onnx.Constant {value = #onnx.dense<tensor<4x3x3x3xf32>, "0x0000803F0000803F{{(0000803F)+}}">} : () -> tensor<4x3x3x3xf32>
