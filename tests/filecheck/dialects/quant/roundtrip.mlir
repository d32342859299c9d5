// RUN: qcc-opt %s | qcc-opt | filecheck %s
// RUN: qcc-opt %s --print-op-generic | qcc-opt | filecheck %s
// RUN: qcc-opt %s --print-op-generic | filecheck %s --check-prefix=GENERIC

// Every quant op and the forms of !quant.uniform print back to the text they were
// parsed from: custom syntax `quant.op %operands attr-dict : functional-type`, and
// the generic form parses back to the same custom text. Types: per tensor
// `<i8, SCALE, ZP>`, per channel `<i4:AXIS, [SCALES], [ZPS]>`, signed `i`/unsigned
// `u` of 2, 4, 8, 16 or 32 bits; scales print as the shortest text that reads back
// to the same double (with a `.0` before any exponent), so @spell normalises.

builtin.module {
  func.func @ops(%x: tensor<1x4x6x6xf32>) -> tensor<1x3xf32> {
    %q = quant.quantize %x : (tensor<1x4x6x6xf32>) -> tensor<1x4x6x6x!quant.uniform<i8, 0.05, -3>>
    %w = quant.constant {packed = #onnx.dense<tensor<18xui8>, "0x25D09D9A5B62203712715D935E9134B55A19">, qcc.name = "w"} : () -> tensor<4x1x3x3x!quant.uniform<i4:0, [0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0]>>
    %b = quant.constant {packed = #onnx.dense<tensor<16xui8>, "0x6400000038FFFFFF2C01000070FEFFFF">} : () -> tensor<4x!quant.uniform<i32:0, [0.005, 0.01, 0.015, 0.02], [0, 0, 0, 0]>>
    %c = quant.conv %q, %w, %b {group = 4 : i64, pads = array<i64: 1, 1, 1, 1>, acc_bits = 32 : i64, act_min = -128 : i64, act_max = 100 : i64, qcc.name = "conv0"} : (tensor<1x4x6x6x!quant.uniform<i8, 0.05, -3>>, tensor<4x1x3x3x!quant.uniform<i4:0, [0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0]>>, tensor<4x!quant.uniform<i32:0, [0.005, 0.01, 0.015, 0.02], [0, 0, 0, 0]>>) -> tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>
    %mp = quant.max_pool %c {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>} : (tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>) -> tensor<1x4x3x3x!quant.uniform<i8, 0.1, 2>>
    %ap = quant.avg_pool %c {kernel_shape = array<i64: 3, 3>, pads = array<i64: 1, 1, 1, 1>, count_include_pad = 0 : i64} : (tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>) -> tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>
    %ad = quant.add %c, %ap : (tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>, tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>) -> tensor<1x4x6x6x!quant.uniform<i8, 0.2, -1>>
    %mu = quant.mul %ad, %c {act_min = -100 : i64} : (tensor<1x4x6x6x!quant.uniform<i8, 0.2, -1>>, tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>) -> tensor<1x4x6x6x!quant.uniform<i8, 0.3, 0>>
    %cl = quant.clamp %mu {act_min = 0 : i64, act_max = 20 : i64} : (tensor<1x4x6x6x!quant.uniform<i8, 0.3, 0>>) -> tensor<1x4x6x6x!quant.uniform<i8, 0.3, 0>>
    %rq = quant.requantize %cl : (tensor<1x4x6x6x!quant.uniform<i8, 0.3, 0>>) -> tensor<1x4x6x6x!quant.uniform<i4, 0.5, 0>>
    %lk = quant.lookup %rq {table = #onnx.dense<tensor<16xi8>, "0x8090A0B0C0D0E0F00010203040506070">} : (tensor<1x4x6x6x!quant.uniform<i4, 0.5, 0>>) -> tensor<1x4x6x6x!quant.uniform<i8, 0.0078125, -128>>
    %pd = quant.pad %lk {pads = array<i64: 0, 0, 1, 1, 0, 0, 1, 1>, value = -128 : i64} : (tensor<1x4x6x6x!quant.uniform<i8, 0.0078125, -128>>) -> tensor<1x4x8x8x!quant.uniform<i8, 0.0078125, -128>>
    %rs = quant.resize %pd {mode = "nearest", coordinate_transformation_mode = "asymmetric", nearest_mode = "floor"} : (tensor<1x4x8x8x!quant.uniform<i8, 0.0078125, -128>>) -> tensor<1x4x16x16x!quant.uniform<i8, 0.0078125, -128>>
    %gp = quant.global_avg_pool %rs : (tensor<1x4x16x16x!quant.uniform<i8, 0.0078125, -128>>) -> tensor<1x4x1x1x!quant.uniform<i8, 0.004, -100>>
    %re = quant.reshape %gp : (tensor<1x4x1x1x!quant.uniform<i8, 0.004, -100>>) -> tensor<1x4x!quant.uniform<i8, 0.004, -100>>
    %w2 = quant.constant {packed = #onnx.dense<tensor<12xui8>, "0x95CDFBECE78882A0832C0726">} : () -> tensor<3x4x!quant.uniform<i8, 0.02, 0>>
    %fc = quant.fully_connected %re, %w2 {acc_bits = 64 : i64} : (tensor<1x4x!quant.uniform<i8, 0.004, -100>>, tensor<3x4x!quant.uniform<i8, 0.02, 0>>) -> tensor<1x3x!quant.uniform<i16, 0.001, 0>>
    %tr = quant.transpose %mp {perm = array<i64: 0, 2, 3, 1>} : (tensor<1x4x3x3x!quant.uniform<i8, 0.1, 2>>) -> tensor<1x3x3x4x!quant.uniform<i8, 0.1, 2>>
    %cc = quant.concat %c, %ad {axis = 1 : i64} : (tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>, tensor<1x4x6x6x!quant.uniform<i8, 0.2, -1>>) -> tensor<1x8x6x6x!quant.uniform<i8, 0.2, -1>>
    %dq = quant.dequantize %fc : (tensor<1x3x!quant.uniform<i16, 0.001, 0>>) -> tensor<1x3xf32>
    func.return %dq : tensor<1x3xf32>
  }
  func.func @types(%a: tensor<2x!quant.uniform<u8, 1.0e-05, 128>>, %b: tensor<3x!quant.uniform<i2:0, [0.5, 0.25, 3.0517578125e-05], [0, -1, 1]>>, %c: tensor<4x!quant.uniform<i16, 1.0e+20, -32768>>, %d: tensor<2x3x!quant.uniform<u4:1, [1.0, 2.0, 0.1], [0, 15, 7]>>, %e: tensor<5x!quant.uniform<i32, 0.1, 2147483647>>, %f: tensor<?x4x!quant.uniform<i8, 1.5, 127>>) -> tensor<2x!quant.uniform<u8, 1.0e-05, 128>> {
    func.return %a : tensor<2x!quant.uniform<u8, 1.0e-05, 128>>
  }
  func.func @spell(%a: tensor<2x!quant.uniform<i8, 0.50, -1>>, %b: tensor<2x!quant.uniform<i8:0, [1.0E+3, 2.50e-3], [1, 2]>>) {
    func.return
  }
}

// CHECK:      builtin.module {
// CHECK-NEXT:   func.func @ops(%x: tensor<1x4x6x6xf32>) -> tensor<1x3xf32> {
// CHECK-NEXT:     %q = quant.quantize %x : (tensor<1x4x6x6xf32>) -> tensor<1x4x6x6x!quant.uniform<i8, 0.05, -3>>
// CHECK-NEXT:     %w = quant.constant {packed = #onnx.dense<tensor<18xui8>, "0x25D09D9A5B62203712715D935E9134B55A19">, qcc.name = "w"} : () -> tensor<4x1x3x3x!quant.uniform<i4:0, [0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0]>>
// CHECK-NEXT:     %b = quant.constant {packed = #onnx.dense<tensor<16xui8>, "0x6400000038FFFFFF2C01000070FEFFFF">} : () -> tensor<4x!quant.uniform<i32:0, [0.005, 0.01, 0.015, 0.02], [0, 0, 0, 0]>>
// CHECK-NEXT:     %c = quant.conv %q, %w, %b {group = 4 : i64, pads = array<i64: 1, 1, 1, 1>, acc_bits = 32 : i64, act_min = -128 : i64, act_max = 100 : i64, qcc.name = "conv0"} : (tensor<1x4x6x6x!quant.uniform<i8, 0.05, -3>>, tensor<4x1x3x3x!quant.uniform<i4:0, [0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0]>>, tensor<4x!quant.uniform<i32:0, [0.005, 0.01, 0.015, 0.02], [0, 0, 0, 0]>>) -> tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>
// CHECK-NEXT:     %mp = quant.max_pool %c {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>} : (tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>) -> tensor<1x4x3x3x!quant.uniform<i8, 0.1, 2>>
// CHECK-NEXT:     %ap = quant.avg_pool %c {kernel_shape = array<i64: 3, 3>, pads = array<i64: 1, 1, 1, 1>, count_include_pad = 0 : i64} : (tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>) -> tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>
// CHECK-NEXT:     %ad = quant.add %c, %ap : (tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>, tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>) -> tensor<1x4x6x6x!quant.uniform<i8, 0.2, -1>>
// CHECK-NEXT:     %mu = quant.mul %ad, %c {act_min = -100 : i64} : (tensor<1x4x6x6x!quant.uniform<i8, 0.2, -1>>, tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>) -> tensor<1x4x6x6x!quant.uniform<i8, 0.3, 0>>
// CHECK-NEXT:     %cl = quant.clamp %mu {act_min = 0 : i64, act_max = 20 : i64} : (tensor<1x4x6x6x!quant.uniform<i8, 0.3, 0>>) -> tensor<1x4x6x6x!quant.uniform<i8, 0.3, 0>>
// CHECK-NEXT:     %rq = quant.requantize %cl : (tensor<1x4x6x6x!quant.uniform<i8, 0.3, 0>>) -> tensor<1x4x6x6x!quant.uniform<i4, 0.5, 0>>
// CHECK-NEXT:     %lk = quant.lookup %rq {table = #onnx.dense<tensor<16xi8>, "0x8090A0B0C0D0E0F00010203040506070">} : (tensor<1x4x6x6x!quant.uniform<i4, 0.5, 0>>) -> tensor<1x4x6x6x!quant.uniform<i8, 0.0078125, -128>>
// CHECK-NEXT:     %pd = quant.pad %lk {pads = array<i64: 0, 0, 1, 1, 0, 0, 1, 1>, value = -128 : i64} : (tensor<1x4x6x6x!quant.uniform<i8, 0.0078125, -128>>) -> tensor<1x4x8x8x!quant.uniform<i8, 0.0078125, -128>>
// CHECK-NEXT:     %rs = quant.resize %pd {mode = "nearest", coordinate_transformation_mode = "asymmetric", nearest_mode = "floor"} : (tensor<1x4x8x8x!quant.uniform<i8, 0.0078125, -128>>) -> tensor<1x4x16x16x!quant.uniform<i8, 0.0078125, -128>>
// CHECK-NEXT:     %gp = quant.global_avg_pool %rs : (tensor<1x4x16x16x!quant.uniform<i8, 0.0078125, -128>>) -> tensor<1x4x1x1x!quant.uniform<i8, 0.004, -100>>
// CHECK-NEXT:     %re = quant.reshape %gp : (tensor<1x4x1x1x!quant.uniform<i8, 0.004, -100>>) -> tensor<1x4x!quant.uniform<i8, 0.004, -100>>
// CHECK-NEXT:     %w2 = quant.constant {packed = #onnx.dense<tensor<12xui8>, "0x95CDFBECE78882A0832C0726">} : () -> tensor<3x4x!quant.uniform<i8, 0.02, 0>>
// CHECK-NEXT:     %fc = quant.fully_connected %re, %w2 {acc_bits = 64 : i64} : (tensor<1x4x!quant.uniform<i8, 0.004, -100>>, tensor<3x4x!quant.uniform<i8, 0.02, 0>>) -> tensor<1x3x!quant.uniform<i16, 0.001, 0>>
// CHECK-NEXT:     %tr = quant.transpose %mp {perm = array<i64: 0, 2, 3, 1>} : (tensor<1x4x3x3x!quant.uniform<i8, 0.1, 2>>) -> tensor<1x3x3x4x!quant.uniform<i8, 0.1, 2>>
// CHECK-NEXT:     %cc = quant.concat %c, %ad {axis = 1 : i64} : (tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>, tensor<1x4x6x6x!quant.uniform<i8, 0.2, -1>>) -> tensor<1x8x6x6x!quant.uniform<i8, 0.2, -1>>
// CHECK-NEXT:     %dq = quant.dequantize %fc : (tensor<1x3x!quant.uniform<i16, 0.001, 0>>) -> tensor<1x3xf32>
// CHECK-NEXT:     func.return %dq : tensor<1x3xf32>
// CHECK-NEXT:   }
// CHECK-NEXT:   func.func @types(%a: tensor<2x!quant.uniform<u8, 1.0e-05, 128>>, %b: tensor<3x!quant.uniform<i2:0, [0.5, 0.25, 3.0517578125e-05], [0, -1, 1]>>, %c: tensor<4x!quant.uniform<i16, 1.0e+20, -32768>>, %d: tensor<2x3x!quant.uniform<u4:1, [1.0, 2.0, 0.1], [0, 15, 7]>>, %e: tensor<5x!quant.uniform<i32, 0.1, 2147483647>>, %f: tensor<?x4x!quant.uniform<i8, 1.5, 127>>) -> tensor<2x!quant.uniform<u8, 1.0e-05, 128>> {
// CHECK-NEXT:     func.return %a : tensor<2x!quant.uniform<u8, 1.0e-05, 128>>
// CHECK-NEXT:   }
// CHECK-NEXT:   func.func @spell(%a: tensor<2x!quant.uniform<i8, 0.5, -1>>, %b: tensor<2x!quant.uniform<i8:0, [1000.0, 0.0025], [1, 2]>>) {
// CHECK-NEXT:     func.return
// CHECK-NEXT:   }
// CHECK-NEXT: }

// The generic form spells every op with its quoted name and operand list.
// GENERIC: %q = "quant.quantize"(%x) : (tensor<1x4x6x6xf32>) -> tensor<1x4x6x6x!quant.uniform<i8, 0.05, -3>>
// GENERIC: %w = "quant.constant"() {packed = #onnx.dense<tensor<18xui8>, "0x25D09D9A5B62203712715D935E9134B55A19">, qcc.name = "w"} : () -> tensor<4x1x3x3x!quant.uniform<i4:0, [0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0]>>
// GENERIC: %b = "quant.constant"() {packed = #onnx.dense<tensor<16xui8>, "0x6400000038FFFFFF2C01000070FEFFFF">} : () -> tensor<4x!quant.uniform<i32:0, [0.005, 0.01, 0.015, 0.02], [0, 0, 0, 0]>>
// GENERIC: %c = "quant.conv"(%q, %w, %b) {group = 4 : i64, pads = array<i64: 1, 1, 1, 1>, acc_bits = 32 : i64, act_min = -128 : i64, act_max = 100 : i64, qcc.name = "conv0"} : (tensor<1x4x6x6x!quant.uniform<i8, 0.05, -3>>, tensor<4x1x3x3x!quant.uniform<i4:0, [0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0]>>, tensor<4x!quant.uniform<i32:0, [0.005, 0.01, 0.015, 0.02], [0, 0, 0, 0]>>) -> tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>
// GENERIC: %mp = "quant.max_pool"(%c) {kernel_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>} : (tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>) -> tensor<1x4x3x3x!quant.uniform<i8, 0.1, 2>>
// GENERIC: %ap = "quant.avg_pool"(%c) {kernel_shape = array<i64: 3, 3>, pads = array<i64: 1, 1, 1, 1>, count_include_pad = 0 : i64} : (tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>) -> tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>
// GENERIC: %ad = "quant.add"(%c, %ap) : (tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>, tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>) -> tensor<1x4x6x6x!quant.uniform<i8, 0.2, -1>>
// GENERIC: %mu = "quant.mul"(%ad, %c) {act_min = -100 : i64} : (tensor<1x4x6x6x!quant.uniform<i8, 0.2, -1>>, tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>) -> tensor<1x4x6x6x!quant.uniform<i8, 0.3, 0>>
// GENERIC: %cl = "quant.clamp"(%mu) {act_min = 0 : i64, act_max = 20 : i64} : (tensor<1x4x6x6x!quant.uniform<i8, 0.3, 0>>) -> tensor<1x4x6x6x!quant.uniform<i8, 0.3, 0>>
// GENERIC: %rq = "quant.requantize"(%cl) : (tensor<1x4x6x6x!quant.uniform<i8, 0.3, 0>>) -> tensor<1x4x6x6x!quant.uniform<i4, 0.5, 0>>
// GENERIC: %lk = "quant.lookup"(%rq) {table = #onnx.dense<tensor<16xi8>, "0x8090A0B0C0D0E0F00010203040506070">} : (tensor<1x4x6x6x!quant.uniform<i4, 0.5, 0>>) -> tensor<1x4x6x6x!quant.uniform<i8, 0.0078125, -128>>
// GENERIC: %pd = "quant.pad"(%lk) {pads = array<i64: 0, 0, 1, 1, 0, 0, 1, 1>, value = -128 : i64} : (tensor<1x4x6x6x!quant.uniform<i8, 0.0078125, -128>>) -> tensor<1x4x8x8x!quant.uniform<i8, 0.0078125, -128>>
// GENERIC: %rs = "quant.resize"(%pd) {mode = "nearest", coordinate_transformation_mode = "asymmetric", nearest_mode = "floor"} : (tensor<1x4x8x8x!quant.uniform<i8, 0.0078125, -128>>) -> tensor<1x4x16x16x!quant.uniform<i8, 0.0078125, -128>>
// GENERIC: %gp = "quant.global_avg_pool"(%rs) : (tensor<1x4x16x16x!quant.uniform<i8, 0.0078125, -128>>) -> tensor<1x4x1x1x!quant.uniform<i8, 0.004, -100>>
// GENERIC: %re = "quant.reshape"(%gp) : (tensor<1x4x1x1x!quant.uniform<i8, 0.004, -100>>) -> tensor<1x4x!quant.uniform<i8, 0.004, -100>>
// GENERIC: %w2 = "quant.constant"() {packed = #onnx.dense<tensor<12xui8>, "0x95CDFBECE78882A0832C0726">} : () -> tensor<3x4x!quant.uniform<i8, 0.02, 0>>
// GENERIC: %fc = "quant.fully_connected"(%re, %w2) {acc_bits = 64 : i64} : (tensor<1x4x!quant.uniform<i8, 0.004, -100>>, tensor<3x4x!quant.uniform<i8, 0.02, 0>>) -> tensor<1x3x!quant.uniform<i16, 0.001, 0>>
// GENERIC: %tr = "quant.transpose"(%mp) {perm = array<i64: 0, 2, 3, 1>} : (tensor<1x4x3x3x!quant.uniform<i8, 0.1, 2>>) -> tensor<1x3x3x4x!quant.uniform<i8, 0.1, 2>>
// GENERIC: %cc = "quant.concat"(%c, %ad) {axis = 1 : i64} : (tensor<1x4x6x6x!quant.uniform<i8, 0.1, 2>>, tensor<1x4x6x6x!quant.uniform<i8, 0.2, -1>>) -> tensor<1x8x6x6x!quant.uniform<i8, 0.2, -1>>
// GENERIC: %dq = "quant.dequantize"(%fc) : (tensor<1x3x!quant.uniform<i16, 0.001, 0>>) -> tensor<1x3xf32>
