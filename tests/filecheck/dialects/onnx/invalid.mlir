// RUN: qcc-opt %s --split-input-file --verify-diagnostics

func.func @f(%x: tensor<1x3x8x8xf32>) -> tensor<1x3x8x8xf32> {
  // expected-error @+1 {{Relu: takes 1..1 inputs, got 2}}
  %y = onnx.Relu %x, %x : (tensor<1x3x8x8xf32>, tensor<1x3x8x8xf32>) -> tensor<1x3x8x8xf32>
  func.return %y : tensor<1x3x8x8xf32>
}

// -----

func.func @f(%x: tensor<1x3x8x8xf32>) -> tensor<1x3x8x8xf32> {
  // expected-error @+1 {{Relu 'r0': unknown attribute 'alpha'}}
  %y = onnx.Relu %x {alpha = 0.1 : f64, qcc.name = "r0"} : (tensor<1x3x8x8xf32>) -> tensor<1x3x8x8xf32>
  func.return %y : tensor<1x3x8x8xf32>
}

// -----

func.func @f(%x: tensor<1x3x8x8xf32>) -> tensor<1x3x8x8xf32> {
  // expected-error @+1 {{LeakyRelu: attribute 'alpha' must be float}}
  %y = onnx.LeakyRelu %x {alpha = 1 : i64} : (tensor<1x3x8x8xf32>) -> tensor<1x3x8x8xf32>
  func.return %y : tensor<1x3x8x8xf32>
}

// -----

func.func @f(%x: tensor<1x3x8x8xf32>) -> tensor<1x3x8x8xf16> {
  // expected-error @+1 {{Sigmoid: result element type f16 differs from input f32}}
  %y = onnx.Sigmoid %x : (tensor<1x3x8x8xf32>) -> tensor<1x3x8x8xf16>
  func.return %y : tensor<1x3x8x8xf16>
}

// -----

func.func @f(%x: tensor<1x3x8x8xf32>, %b: tensor<4xf32>) -> tensor<1x3x8x8xf32> {
  // expected-error @+1 {{Add: operand shapes [1, 3, 8, 8], [4] do not broadcast}}
  %y = onnx.Add %x, %b : (tensor<1x3x8x8xf32>, tensor<4xf32>) -> tensor<1x3x8x8xf32>
  func.return %y : tensor<1x3x8x8xf32>
}

// -----

func.func @f(%x: tensor<1x3x8x8xf32>, %b: tensor<8xf32>) -> tensor<3x8x8xf32> {
  // expected-error @+1 {{Mul: result shape [3, 8, 8] is not the broadcast shape [1, 3, 8, 8]}}
  %y = onnx.Mul %x, %b : (tensor<1x3x8x8xf32>, tensor<8xf32>) -> tensor<3x8x8xf32>
  func.return %y : tensor<3x8x8xf32>
}

// -----

func.func @f(%x: tensor<1x3x8x8xf32>, %b: tensor<8xi32>) -> tensor<1x3x8x8xf32> {
  // expected-error @+1 {{Sub: operands must share one element type, got f32, i32}}
  %y = onnx.Sub %x, %b : (tensor<1x3x8x8xf32>, tensor<8xi32>) -> tensor<1x3x8x8xf32>
  func.return %y : tensor<1x3x8x8xf32>
}

// -----

func.func @f(%x: tensor<1x3x8x8xf32>, %b: tensor<8xf32>) -> tensor<1x3x8x8xf32> {
  // expected-error @+1 {{Less: result element type must be i1, got f32}}
  %y = onnx.Less %x, %b : (tensor<1x3x8x8xf32>, tensor<8xf32>) -> tensor<1x3x8x8xf32>
  func.return %y : tensor<1x3x8x8xf32>
}

// -----

func.func @f(%x: tensor<1x3x8x8xf32>, %w: tensor<4x2x3x3xf32>) -> tensor<1x4x6x6xf32> {
  // expected-error @+1 {{Conv: 3 input channels do not match weight [4, 2, 3, 3] with group 1}}
  %y = onnx.Conv %x, %w : (tensor<1x3x8x8xf32>, tensor<4x2x3x3xf32>) -> tensor<1x4x6x6xf32>
  func.return %y : tensor<1x4x6x6xf32>
}

// -----

func.func @f(%x: tensor<1x4x8x8xf32>, %w: tensor<4x1x3x3xf32>, %b: tensor<3xf32>) -> tensor<1x4x6x6xf32> {
  // expected-error @+1 {{Conv: bias shape [3] must be [4]}}
  %y = onnx.Conv %x, %w, %b {group = 4 : i64} : (tensor<1x4x8x8xf32>, tensor<4x1x3x3xf32>, tensor<3xf32>) -> tensor<1x4x6x6xf32>
  func.return %y : tensor<1x4x6x6xf32>
}

// -----

func.func @f(%a: tensor<2x3xf32>, %b: tensor<4x5xf32>) -> tensor<2x5xf32> {
  // expected-error @+1 {{MatMul: operand shapes [2, 3] and [4, 5] do not multiply}}
  %y = onnx.MatMul %a, %b : (tensor<2x3xf32>, tensor<4x5xf32>) -> tensor<2x5xf32>
  func.return %y : tensor<2x5xf32>
}

// -----

func.func @f() -> tensor<2xf32> {
  // expected-error @+1 {{#onnx.dense holds 1 elements, its type tensor<2xf32> needs 2}}
  %c = onnx.Constant {value = #onnx.dense<tensor<2xf32>, "0x0000803F">} : () -> tensor<2xf32>
  func.return %c : tensor<2xf32>
}

// -----

func.func @f() -> tensor<2xf32> {
  // expected-error @+1 {{elided}}
  %c = onnx.Constant {value = #onnx.dense<tensor<2xf32>, elided>} : () -> tensor<2xf32>
  func.return %c : tensor<2xf32>
}

// -----

func.func @f(%x: tensor<1x3xf32>) -> tensor<1x3xf32> {
  // expected-error @+1 {{Gemm: takes 2..3 inputs, got 1}}
  %y = onnx.Gemm %x : (tensor<1x3xf32>) -> tensor<1x3xf32>
  func.return %y : tensor<1x3xf32>
}
