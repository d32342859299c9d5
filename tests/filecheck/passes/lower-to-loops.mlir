// RUN: qcc-opt %s -p lower-to-loops | filecheck %s
// RUN: qcc-opt %s -p 'lower-to-loops{index_bits=32}' | filecheck %s --check-prefix=I32
// RUN: qcc-opt %s -p 'lower-to-loops{dsp=true}' | filecheck %s --check-prefix=DSP

// A quantized fully-connected layer becomes loops over flat memrefs: weights a
// constant global, activations views of one planned arena, the int32 dot product
// carried through scf.for, requantize32 spelled out (SRDHM: +2^30, >>31, a 32x32->64
// product; RDBP and the clamp in int32),
// then the C ABI: @qcc_body on codes, @qcc_model_run (float edges), @qcc_model_run_q.

func.func @main(%x: tensor<1x4xf32>) -> tensor<1x2xf32> {
  %q = quant.quantize %x : (tensor<1x4xf32>) -> tensor<1x4x!quant.uniform<i8, 0.05, -3>>
  %w = quant.constant {packed = #onnx.dense<tensor<8xui8>, "0x0102FF0003FE0100">} : () -> tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>
  %y = quant.fully_connected %q, %w {acc_bits = 32 : i64, qcc.name = "fc"} : (tensor<1x4x!quant.uniform<i8, 0.05, -3>>, tensor<2x4x!quant.uniform<i8:0, [0.1, 0.2], [0, 0]>>) -> tensor<1x2x!quant.uniform<i8, 0.1, 5>>
  %d = quant.dequantize %y : (tensor<1x2x!quant.uniform<i8, 0.1, 5>>) -> tensor<1x2xf32>
  func.return %d : tensor<1x2xf32>
}

// CHECK:      builtin.module attributes {qcc.index_bits = 64 : i64, qcc.arena_bytes = 32 : i64}
// CHECK:      sym_name = "qcc_arena", type = memref<32xi8>
// CHECK:      sym_name = "qcc_w{{[0-9]+}}", type = memref<8xi8>, initial_value = dense<[1, 2, -1, 0, 3, -2, 1, 0]>
// CHECK:      func.func private @qcc_body(%[[IN:.*]]: memref<4xi8>, %[[OUT:.*]]: memref<2xi8>) {
// CHECK:        scf.for %[[N:.*]] = %{{.*}} to %{{.*}} step
// CHECK:        %[[ACC:.*]] = scf.for %[[K:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%[[A:.*]] = %{{.*}}) -> (i32) {
// CHECK:          memref.load %[[IN]][%{{.*}}] : memref<4xi8>
// CHECK:          arith.muli %{{.*}}, %{{.*}} : i32
// CHECK:          scf.yield %{{.*}} : i32
// CHECK:        arith.extsi %[[ACC]] : i32 to i64
// CHECK:        arith.constant 1073741824 : i64
// CHECK:        arith.constant 31 : i64
// CHECK:        arith.shrsi
// CHECK:        %[[S:.*]] = arith.trunci %{{.*}} : i64 to i32
// CHECK:        arith.shrsi %[[S]], %{{.*}} : i32
// CHECK:        arith.maxsi %{{.*}}, %{{.*}} : i32
// CHECK:        arith.minsi %{{.*}}, %{{.*}} : i32
// CHECK:        arith.trunci %{{.*}} : i32 to i8
// CHECK:        memref.store %{{.*}}, %[[OUT]][%{{.*}}] : memref<2xi8>
// CHECK:      func.func @qcc_model_run(%{{.*}}: memref<4xf32>, %{{.*}}: memref<2xf32>) -> i32 {
// CHECK:        memref.extract_aligned_pointer_as_index
// CHECK:        scf.if
// CHECK:        arith.constant -1 : i32
// CHECK:        memref.view
// CHECK:        arith.divf %{{.*}}, %{{.*}} : f64
// CHECK:        func.call @qcc_body
// CHECK:        arith.truncf %{{.*}} : f64 to f32
// CHECK:      func.func @qcc_model_run_q(%{{.*}}: memref<4xi8>, %{{.*}}: memref<2xi8>) -> i32 {
// CHECK-NOT:  quant.

// I32: qcc.index_bits = 32 : i64

// With the Arm DSP extension the int8 dot product reads four inputs and four weights
// per 32-bit load (unaligned allowed), splits each word into int16 pairs with SXTB16
// (the odd bytes after a rotation by 8) and accumulates with two SMLAD per word.
// DSP:      memref.view %{{.*}}[%{{.*}}][] : memref<4xi8> to memref<1xi32>
// DSP:      scf.for
// DSP:        memref.load %{{.*}} {qcc.align = 1 : i64} : memref<1xi32>
// DSP:        arith.shrui %{{.*}}, %{{.*}} : i32
// DSP:        arith.shli %{{.*}}, %{{.*}} : i32
// DSP:        llvm.call_intrinsic "llvm.arm.sxtb16"
// DSP:        llvm.call_intrinsic "llvm.arm.sxtb16"
// DSP:        llvm.call_intrinsic "llvm.arm.smlad"(%{{.*}}, %{{.*}}, %{{.*}}) : (i32, i32, i32) -> i32
// DSP-NEXT:   llvm.call_intrinsic "llvm.arm.smlad"
