// RUN: qcc-opt %s -p materialize-patches | filecheck %s
// RUN: qcc-opt %s -p materialize-patches | qcc-opt -p materialize-patches | filecheck %s --check-prefix=AGAIN
// RUN: qcc-opt %S/tile-patches.mlir -p 'tile-patches{grid="2x2"}' | not qcc-opt -p materialize-patches 2>&1 | filecheck %s --check-prefix=FLOAT

// max pool 3x3 (pad 1) -> clamp -> max pool 3x3 stride 2 (pad 1) on 8x8, split after the
// second pool (4x4) into 2x1 patches. Output rows [0, 2) need pool1 rows [0, 4) (row -1 is
// padding) and input rows [0, 5); rows [2, 4) need pool1 rows [3, 8) and input rows [2, 8)
// (row 8 is padding). Each tile keeps the real padding only at the tensor's border, the
// width (not split) keeps both sides, and the 4x4 split is assembled by insert_slice.

builtin.module attributes {onnx.opset = 18 : i64} {
  func.func @main(%x: tensor<1x1x8x8xf32> {qcc.name = "x"}) -> (tensor<1x1x1x1xf32> {qcc.name = "y"}) {
    %q = quant.quantize %x : (tensor<1x1x8x8xf32>) -> tensor<1x1x8x8x!quant.uniform<i8, 0.05, -3>>
    %p = quant.max_pool %q {kernel_shape = array<i64: 3, 3>, pads = array<i64: 1, 1, 1, 1>, qcc.name = "pool1"} : (tensor<1x1x8x8x!quant.uniform<i8, 0.05, -3>>) -> tensor<1x1x8x8x!quant.uniform<i8, 0.05, -3>>
    %r = quant.clamp %p {act_min = -3 : i64, qcc.name = "relu"} : (tensor<1x1x8x8x!quant.uniform<i8, 0.05, -3>>) -> tensor<1x1x8x8x!quant.uniform<i8, 0.05, -3>>
    %s = quant.max_pool %r {kernel_shape = array<i64: 3, 3>, pads = array<i64: 1, 1, 1, 1>, strides = array<i64: 2, 2>, qcc.name = "pool2", qcc.patch_grid = array<i64: 2, 1>} : (tensor<1x1x8x8x!quant.uniform<i8, 0.05, -3>>) -> tensor<1x1x4x4x!quant.uniform<i8, 0.05, -3>>
    %g = quant.global_avg_pool %s : (tensor<1x1x4x4x!quant.uniform<i8, 0.05, -3>>) -> tensor<1x1x1x1x!quant.uniform<i8, 0.05, -3>>
    %y = quant.dequantize %g : (tensor<1x1x1x1x!quant.uniform<i8, 0.05, -3>>) -> tensor<1x1x1x1xf32>
    func.return %y : tensor<1x1x1x1xf32>
  }
}

// CHECK:      %q = quant.quantize %x
// CHECK-NEXT: %[[X0:.*]] = quant.slice %q {offsets = array<i64: 0, 0, 0, 0>} : ({{.*}}) -> tensor<1x1x5x8x
// CHECK-NEXT: %[[P0:.*]] = quant.max_pool %[[X0]] {kernel_shape = array<i64: 3, 3>, pads = array<i64: 1, 1, 0, 1>, qcc.name = "pool1@patch0_0"} : ({{.*}}) -> tensor<1x1x4x8x
// CHECK-NEXT: %[[R0:.*]] = quant.clamp %[[P0]] {act_min = -3 : i64, qcc.name = "relu@patch0_0"} : ({{.*}}) -> tensor<1x1x4x8x
// CHECK-NEXT: %[[S0:.*]] = quant.max_pool %[[R0]] {{{.*}}pads = array<i64: 1, 1, 0, 0>, strides = array<i64: 2, 2>, qcc.name = "pool2@patch0_0"} : ({{.*}}) -> tensor<1x1x2x4x
// CHECK-NEXT: %[[Y0:.*]] = quant.insert_slice %[[S0]] {offsets = array<i64: 0, 0, 0, 0>, {{.*}}} : ({{.*}}) -> tensor<1x1x4x4x
// CHECK-NEXT: %[[X1:.*]] = quant.slice %q {offsets = array<i64: 0, 0, 2, 0>} : ({{.*}}) -> tensor<1x1x6x8x
// CHECK-NEXT: %[[P1:.*]] = quant.max_pool %[[X1]] {{{.*}}pads = array<i64: 0, 1, 1, 1>, {{.*}}} : ({{.*}}) -> tensor<1x1x5x8x
// CHECK-NEXT: %[[R1:.*]] = quant.clamp %[[P1]]
// CHECK-NEXT: %[[S1:.*]] = quant.max_pool %[[R1]] {{{.*}}pads = array<i64: 0, 1, 0, 0>, {{.*}}} : ({{.*}}) -> tensor<1x1x2x4x
// CHECK-NEXT: %s = quant.insert_slice %[[Y0]], %[[S1]] {offsets = array<i64: 0, 0, 2, 0>, {{.*}}} : ({{.*}}) -> tensor<1x1x4x4x
// CHECK-NEXT: %g = quant.global_avg_pool %s
// CHECK-NOT:  qcc.patch_grid

// Nothing is marked any more: a second run changes nothing.
// AGAIN-COUNT-2: quant.insert_slice
// AGAIN-NOT:     quant.insert_slice

// FLOAT: materialize-patches: onnx.Conv in the patch stage is not quantized
