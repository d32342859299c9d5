// RUN: %python -c "import numpy as np; np.savez('%t.npz', x=np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32))"
// RUN: qcc-opt %s -p 'calibrate{data="%t.npz" bits="4,8"},measure-sensitivity{data="%t.npz" bits="2,4,8"}' | filecheck %s
// RUN: not qcc-opt %s -p 'measure-sensitivity{data="%t.npz"}' 2>&1 | filecheck %s --check-prefix=UNCALIBRATED

// Every calibrated op gets local metrics per candidate width (activations: 4 and 8; weights: 2, 4, 8)
// and the SQNR that the one quantized inference per sample measured at its output.

builtin.module attributes {onnx.opset = 18 : i64} {
  func.func @main(%x: tensor<1x4xf32> {qcc.name = "x"}) -> (tensor<1x4xf32> {qcc.name = "y"}) {
    %w = onnx.Constant {value = #onnx.dense<tensor<4x4xf32>, "0x0000803F0000003F000080BE0000803E000000BF0000803F0000003F0000803E0000803E0000803E0000803F000000BF0000003F000080BE0000803E0000803F">} : () -> tensor<4x4xf32>
    %y = onnx.MatMul %x, %w {qcc.name = "fc"} : (tensor<1x4xf32>, tensor<4x4xf32>) -> tensor<1x4xf32>
    func.return %y : tensor<1x4xf32>
  }
}

// CHECK: onnx.MatMul %x, %w {qcc.name = "fc", qcc.ranges = {{.*}}, qcc.stats = {{.*}}, qcc.sensitivity = {signal = {{.*}} : f64, w_sqnr = {i2 = {{.*}} : f64, i4 = {{.*}} : f64, i8 = {{.*}} : f64}, a_sqnr = {i4 = {{.*}} : f64, i8 = {{.*}} : f64}, w_mse = {i2 = {{.*}}, i4 = {{.*}}, i8 = {{.*}}}, a_mse = {i4 = {{.*}}, i8 = {{.*}}}, ref_sqnr = {{.*}} : f64}}

// UNCALIBRATED: qcc-opt: error: measure-sensitivity needs calibrated IR: run 'calibrate' first
