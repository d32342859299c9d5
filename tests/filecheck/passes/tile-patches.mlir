// RUN: qcc-opt %s -p 'tile-patches{grid="2x2"}' | filecheck %s --check-prefix=FIXED
// RUN: qcc-opt %s -p tile-patches | filecheck %s --check-prefix=AUTO

// conv 3x3 (pad 1) -> relu -> conv 3x3 stride 2 (pad 1) -> add -> global pool, on 8x8.
// The global pool cannot be tiled: every split lies before it.
//
// 2x2 grid: the minimal peak (excluding the input) splits after conv2 (4x4). Its
// output rows [0,2) and [2,4) need relu rows [0,4) and [3,8), input rows [0,5)
// and [2,8): input halo (5+6)^2/64 - 1 = 0.89; conv1 computes 9x9 instead of 8x8
// pixels, 17 * 9 = 153 extra MACs of 720 (21%). Peak: conv1 and relu tiles
// (5x5 f32 = 100 bytes, 112 aligned) and the full 4x4 split (64): 288 bytes, 544
// with the 8x8 input; layer by layer 512.
//
// auto (<= 20% extra MACs): splitting after relu with a 4x4 grid recomputes
// nothing (conv1 is 3x3 but each relu patch needs only its own conv1 pixels).

builtin.module attributes {onnx.opset = 18 : i64} {
  func.func @main(%x: tensor<1x1x8x8xf32> {qcc.name = "x"}) -> (tensor<1x1x1x1xf32> {qcc.name = "y"}) {
    %w1 = onnx.Constant {value = #onnx.dense<tensor<1x1x3x3xf32>, "0x0000803F0000004000004040000080400000A0400000C0400000E0400000004100001041">} : () -> tensor<1x1x3x3xf32>
    %c1 = onnx.Conv %x, %w1 {pads = array<i64: 1, 1, 1, 1>, qcc.name = "conv1"} : (tensor<1x1x8x8xf32>, tensor<1x1x3x3xf32>) -> tensor<1x1x8x8xf32>
    %r = onnx.Relu %c1 {qcc.name = "relu"} : (tensor<1x1x8x8xf32>) -> tensor<1x1x8x8xf32>
    %w2 = onnx.Constant {value = #onnx.dense<tensor<1x1x3x3xf32>, "0x398EE33D398EE33D398EE33D398EE33D398EE33D398EE33D398EE33D398EE33D398EE33D">} : () -> tensor<1x1x3x3xf32>
    %c2 = onnx.Conv %r, %w2 {pads = array<i64: 1, 1, 1, 1>, strides = array<i64: 2, 2>, qcc.name = "conv2"} : (tensor<1x1x8x8xf32>, tensor<1x1x3x3xf32>) -> tensor<1x1x4x4xf32>
    %s = onnx.Add %c2, %c2 {qcc.name = "add"} : (tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>) -> tensor<1x1x4x4xf32>
    %g = onnx.GlobalAveragePool %s {qcc.name = "gap"} : (tensor<1x1x4x4xf32>) -> tensor<1x1x1x1xf32>
    func.return %g : tensor<1x1x1x1xf32>
  }
}

// FIXED:      builtin.module attributes {onnx.opset = 18 : i64, qcc.patch = {mode = "fixed", {{.*}} layer_sram_peak_bytes_excl_input = 512 : i64, split = "onnx.Conv 'conv2'", split_index = 2 : i64, grid = array<i64: 2, 2>, stage_ops = 3 : i64, sram_peak_bytes = 544 : i64, sram_peak_bytes_excl_input = 288 : i64, recompute_macs = 153 : i64, recompute_overhead = 2.125000e-01 : f64, input_halo_overlap = 8.906250e-01 : f64
// FIXED:      onnx.Relu %c1 {qcc.name = "relu"}
// FIXED:      onnx.Conv %r, %w2 {{{.*}}qcc.name = "conv2", qcc.patch_grid = array<i64: 2, 2>}
// FIXED-NOT:  qcc.patch_grid

// AUTO:       qcc.patch = {mode = "auto", {{.*}} split = "onnx.Relu 'relu'", {{.*}} grid = array<i64: 4, 4>, {{.*}} recompute_macs = 0 : i64
// AUTO:       onnx.Relu %c1 {qcc.name = "relu", qcc.patch_grid = array<i64: 4, 4>}
// AUTO-NOT:   qcc.patch_grid
