// RUN: qcc-opt %inputs/torch_activations.onnx -p recognize-activations | filecheck %s --check-prefix=TORCH
// RUN: qcc-opt %s -p recognize-activations | filecheck %s

// PyTorch's export (tools/make_activation_models.py): x * relu6(x + 3) / 6,
// relu6(x + 3) / 6, x * sigmoid(x) and x * (relu6(x + 3) * (1/6)).
// TORCH:      %[[C:.*]] = onnx.Conv %x
// TORCH-NEXT: %[[A:.*]] = onnx.HardSwish %[[C]] {qcc.name = "/Add+/Clip+/Mul+/Div"}
// TORCH-NEXT: %[[B:.*]] = onnx.HardSigmoid %[[A]] {alpha = 0.1666{{[0-9]*}} : f64, beta = 5.000000e-01 : f64, qcc.name = "/Add_1+/Clip_1+/Div_1"}
// TORCH-NEXT: %[[S:.*]] = onnx.Swish %[[A]] {qcc.name = "/Sigmoid+/Mul_1"}
// TORCH-NEXT: %[[D:.*]] = onnx.HardSwish %[[S]] {qcc.name = "/Add_2+/Clip_2+/Mul_2+/Mul_3"}
// TORCH-NEXT: onnx.Add %[[B]], %[[D]]
// TORCH-NOT:  onnx.Clip
// TORCH-NOT:  onnx.Sigmoid

// clip(x * 0.2 + 0.5, 0, 1) with the constants first, Clip in its attribute form;
// a hard-sigmoid whose Add result has a second user stays as it is.
builtin.module attributes {onnx.opset = 18 : i64} {
  func.func @main(%x: tensor<1x4xf32> {qcc.name = "x"}) -> (tensor<1x4xf32> {qcc.name = "y"}, tensor<1x4xf32> {qcc.name = "z"}, tensor<1x4xf32> {qcc.name = "u"}) {
    %a = onnx.Constant {value = #onnx.dense<tensor<f32>, "0xCDCC4C3E">} : () -> tensor<f32>
    %b = onnx.Constant {value = #onnx.dense<tensor<f32>, "0x0000003F">} : () -> tensor<f32>
    %zero = onnx.Constant {value = #onnx.dense<tensor<f32>, "0x00000000">} : () -> tensor<f32>
    %one = onnx.Constant {value = #onnx.dense<tensor<f32>, "0x0000803F">} : () -> tensor<f32>
    %m = onnx.Mul %a, %x {qcc.name = "scale"} : (tensor<f32>, tensor<1x4xf32>) -> tensor<1x4xf32>
    %s = onnx.Add %b, %m {qcc.name = "shift"} : (tensor<f32>, tensor<1x4xf32>) -> tensor<1x4xf32>
    %y = onnx.Clip %s, %zero, %one {qcc.name = "clip"} : (tensor<1x4xf32>, tensor<f32>, tensor<f32>) -> tensor<1x4xf32>
    %three = onnx.Constant {value = #onnx.dense<tensor<f32>, "0x00004040">} : () -> tensor<f32>
    %six = onnx.Constant {value = #onnx.dense<tensor<f32>, "0x0000C040">} : () -> tensor<f32>
    %p = onnx.Add %x, %three {qcc.name = "plus3"} : (tensor<1x4xf32>, tensor<f32>) -> tensor<1x4xf32>
    %r = onnx.Clip %p, %zero, %six {qcc.name = "relu6"} : (tensor<1x4xf32>, tensor<f32>, tensor<f32>) -> tensor<1x4xf32>
    %z = onnx.Div %r, %six {qcc.name = "div6"} : (tensor<1x4xf32>, tensor<f32>) -> tensor<1x4xf32>
    %u = onnx.Mul %p, %z {qcc.name = "reuse"} : (tensor<1x4xf32>, tensor<1x4xf32>) -> tensor<1x4xf32>
    func.return %y, %z, %u : tensor<1x4xf32>, tensor<1x4xf32>, tensor<1x4xf32>
  }
}

// CHECK:      %[[Y:.*]] = onnx.HardSigmoid %x {alpha = 2.000000e-01 : f64, beta = 5.000000e-01 : f64, qcc.name = "scale+shift+clip"}
// CHECK:      onnx.Clip %{{.*}} {qcc.name = "relu6"}
// CHECK-NEXT: onnx.Div %{{.*}} {qcc.name = "div6"}
// CHECK-NOT:  onnx.HardSwish
// CHECK:      func.return %[[Y]]
