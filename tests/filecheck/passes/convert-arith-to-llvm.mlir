// RUN: qcc-opt %s -p convert-arith-to-llvm | filecheck %s

// Integer and float arith ops map to llvm one to one; min/max become icmp +
// select; fptosi the saturating intrinsic; math.exp the llvm.exp intrinsic.
// `index` is i64 here (no qcc.index_bits attribute): values of type index are
// cast with unrealized_conversion_cast until func is converted.

func.func @f(%a: i32, %b: i64, %i: index, %x: f32) -> (i64, i8, index, f32, i64, i1) {
  %c = arith.constant 1073741824 : i64
  %e = arith.extsi %a : i32 to i64
  %m = arith.muli %e, %b : i64
  %s = arith.addi %m, %c : i64
  %k = arith.constant 31 : i64
  %h = arith.shrsi %s, %k : i64
  %lo = arith.constant -128 : i64
  %mx = arith.maxsi %h, %lo : i64
  %t = arith.trunci %mx : i64 to i8
  %c2 = arith.constant 2 : index
  %j = arith.muli %i, %c2 : index
  %y = math.exp %x : f32
  %d = arith.extf %y : f32 to f64
  %r = arith.fptosi %d : f64 to i64
  %p = arith.cmpi slt, %h, %lo : i64
  func.return %h, %t, %j, %y, %r, %p : i64, i8, index, f32, i64, i1
}

// CHECK:      %[[C:.*]] = llvm.mlir.constant(1073741824) : i64
// CHECK-NEXT: %[[E:.*]] = llvm.sext %a : i32 to i64
// CHECK-NEXT: %[[M:.*]] = llvm.mul %[[E]], %b : i64
// CHECK-NEXT: %[[S:.*]] = llvm.add %[[M]], %[[C]] : i64
// CHECK:      %[[H:.*]] = llvm.ashr %[[S]], %{{.*}} : i64
// CHECK:      %[[LO:.*]] = llvm.mlir.constant(-128) : i64
// CHECK-NEXT: %[[CMP:.*]] = llvm.icmp "sgt" %[[H]], %[[LO]] : i64
// CHECK-NEXT: %[[MX:.*]] = llvm.select %[[CMP]], %[[H]], %[[LO]] : i1, i64
// CHECK-NEXT: llvm.trunc %[[MX]] : i64 to i8
// CHECK:      %[[I:.*]] = builtin.unrealized_conversion_cast %i : index to i64
// CHECK-NEXT: %[[J:.*]] = llvm.mul %[[I]], %{{.*}} : i64
// CHECK-NEXT: %[[JI:.*]] = builtin.unrealized_conversion_cast %[[J]] : i64 to index
// CHECK-NEXT: llvm.intr.exp(%x) : (f32) -> f32
// CHECK-NEXT: llvm.fpext
// CHECK-NEXT: llvm.call_intrinsic "llvm.fptosi.sat.i64.f64"
// CHECK-NEXT: llvm.icmp "slt" %[[H]], %[[LO]] : i64
// CHECK-NEXT: func.return %[[H]], %{{.*}}, %[[JI]]
// CHECK-NOT:  arith.
