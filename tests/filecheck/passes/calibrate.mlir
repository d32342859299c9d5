// RUN: %python -c "import numpy as np; np.savez('%t.npz', x=np.array([[-2, 0, 1, 3], [1, 4, -1, 0]], np.float32))"
// RUN: qcc-opt %s -p 'calibrate{data="%t.npz" bits="4,8"}' | filecheck %s
// RUN: qcc-opt %s -p 'calibrate{data="%t.npz" bits="8" method="percentile"}' | filecheck %s --check-prefix=PCT
// RUN: qcc-opt %s -p 'calibrate{bits="8"}' | filecheck %s --check-prefix=SYN
// RUN: not qcc-opt %s -p 'calibrate{data="%t.npz" method="magic"}' 2>&1 | filecheck %s --check-prefix=BAD

// minmax over the two samples; ranges always contain 0; the stats are min, max, mean square.

builtin.module attributes {onnx.opset = 18 : i64} {
  func.func @main(%x: tensor<1x4xf32> {qcc.name = "x"}) -> (tensor<1x4xf32> {qcc.name = "y"}) {
    %r = onnx.Relu %x {qcc.name = "relu"} : (tensor<1x4xf32>) -> tensor<1x4xf32>
    func.return %r : tensor<1x4xf32>
  }
}

// CHECK: builtin.module attributes {onnx.opset = 18 : i64, qcc.calibration = {method = "minmax", samples = 2 : i64, source = "{{.*}}.npz"}}
// CHECK: %x: tensor<1x4xf32> {qcc.name = "x", qcc.ranges = {i4 = array<f64: -2.000000e+00, 4.000000e+00>, i8 = array<f64: -2.000000e+00, 4.000000e+00>}, qcc.stats = array<f64: -2.000000e+00, 4.000000e+00, 4.000000e+00>}
// CHECK: onnx.Relu %x {qcc.name = "relu", qcc.ranges = {i4 = array<f64: 0.000000e+00, 4.000000e+00>, i8 = array<f64: 0.000000e+00, 4.000000e+00>}, qcc.stats = array<f64: 0.000000e+00, 4.000000e+00, 3.375000e+00>}

// PCT: qcc.calibration = {method = "percentile"
// PCT: onnx.Relu %x {qcc.name = "relu", qcc.ranges = {i8 = array<f64: 0.000000e+00, {{.*}}>}

// SYN: qcc.calibration = {method = "minmax", samples = 32 : i64, source = "synthetic"}

// BAD: qcc-opt: error: calibration method 'magic' is not one of minmax, percentile, mse, entropy
