// RUN: qcc-opt %s -p convert-scf-to-cf,convert-cf-to-llvm | filecheck %s

// After xDSL's convert-scf-to-cf, a loop is blocks and branches: the loop
// variable's block argument takes its llvm type (index -> i64) and the branches
// become llvm.br / llvm.cond_br passing converted operands.

func.func @sum(%m: memref<8xi32>) -> i32 {
  %c0 = arith.constant 0 : index
  %c8 = arith.constant 8 : index
  %c1 = arith.constant 1 : index
  %z = arith.constant 0 : i32
  %r = scf.for %i = %c0 to %c8 step %c1 iter_args(%a = %z) -> (i32) {
    %v = memref.load %m[%i] : memref<8xi32>
    %s = arith.addi %a, %v : i32
    scf.yield %s : i32
  }
  func.return %r : i32
}

// CHECK:      %[[LB:.*]] = builtin.unrealized_conversion_cast %c0 : index to i64
// CHECK-NEXT: llvm.br ^[[HEAD:.*]](%[[LB]], %z : i64, i32)
// CHECK-NEXT: ^[[HEAD]](%[[IV:.*]]: i64, %a: i32):
// CHECK-NEXT:   %i = builtin.unrealized_conversion_cast %[[IV]] : i64 to index
// CHECK-NEXT:   %[[C:.*]] = arith.cmpi slt, %i, %c8 : index
// CHECK-NEXT:   llvm.cond_br %[[C]], ^[[BODY:.*]], ^[[EXIT:.*]]
// CHECK-NEXT: ^[[BODY]]:
// CHECK:        %[[NEXT:.*]] = builtin.unrealized_conversion_cast %{{.*}} : index to i64
// CHECK-NEXT:   llvm.br ^[[HEAD]](%[[NEXT]], %s : i64, i32)
// CHECK-NEXT: ^[[EXIT]]:
// CHECK-NEXT:   func.return %a : i32
// CHECK-NOT:  cf.
