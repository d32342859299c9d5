// RUN: %python %inputs/make_model.py unsupported_op %t.onnx
// RUN: not qcc-opt %t.onnx 2>&1 | filecheck %s
// RUN: not qcc interpret %t.onnx --inputs %t.onnx --output %t.npz 2>&1 | filecheck %s --check-prefix=CLI

// CHECK: qcc-opt: error: node 'my_roipool' (MaxRoiPool, opset 14): unsupported op MaxRoiPool
// CHECK-NOT: Traceback
// CLI: qcc: error: node 'my_roipool' (MaxRoiPool, opset 14): unsupported op MaxRoiPool
