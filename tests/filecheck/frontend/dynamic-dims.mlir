// RUN: %python %inputs/make_model.py paddle_dynamic %t.onnx
// RUN: qcc-opt %t.onnx --input-shape image=1,3,8,8 | filecheck %s
// RUN: not qcc-opt %t.onnx 2>&1 | filecheck %s --check-prefix=UNBOUND
// RUN: not qcc-opt %t.onnx --input-shape image=1,3,8 2>&1 | filecheck %s --check-prefix=RANK
// RUN: not qcc-opt %t.onnx --input-shape image=1,4,8,8 2>&1 | filecheck %s --check-prefix=FIXED
// RUN: not qcc-opt %t.onnx --input-shape nosuch=1,3,8,8 2>&1 | filecheck %s --check-prefix=NAME

// Paddle's symbolic dims ('p2o.DynamicDimension.N', '?') bind through --input-shape.

// CHECK: func.func @main(%image: tensor<1x3x8x8xf32> {qcc.name = "image"}) -> (tensor<1x2x8x8xf32> {qcc.name = "out"})
// CHECK: onnx.Conv %image, %w {pads = array<i64: 1, 1, 1, 1>, qcc.name = "conv"} : (tensor<1x3x8x8xf32>, tensor<2x3x3x3xf32>) -> tensor<1x2x8x8xf32>

// UNBOUND: qcc-opt: error: graph input 'image': dimension 2 ('p2o.DynamicDimension.1') is dynamic; bind it with --input-shape image=D0,D1,...
// RANK: qcc-opt: error: --input-shape image: model input has rank 4, got 3 dimensions
// FIXED: qcc-opt: error: --input-shape image: dimension 1 is fixed to 3 by the model, got 4
// NAME: qcc-opt: error: --input-shape names 'nosuch', which is not a graph input (inputs: image)
