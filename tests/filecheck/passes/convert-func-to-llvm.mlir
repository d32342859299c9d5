// RUN: qcc-opt %s -p convert-func-to-llvm | filecheck %s
// RUN: qcc-opt %s -p convert-scf-to-cf,convert-arith-to-llvm,convert-memref-to-llvm,convert-cf-to-llvm,convert-func-to-llvm,reconcile-unrealized-casts,check-loop-legality{stage="llvm"} | filecheck %s --check-prefix=ALL

// Functions take llvm types: memref arguments are noalias pointers (the model.h
// ABI: arrays do not overlap), private functions internal, public ones external;
// calls and returns follow. With every conversion and reconcile-unrealized-casts,
// nothing but llvm ops remains.

func.func private @body(%x: memref<4xi8>, %y: memref<4xi8>) {
  %c0 = arith.constant 0 : index
  %c4 = arith.constant 4 : index
  %c1 = arith.constant 1 : index
  scf.for %i = %c0 to %c4 step %c1 {
    %v = memref.load %x[%i] : memref<4xi8>
    memref.store %v, %y[%i] : memref<4xi8>
  }
  func.return
}

func.func @run(%x: memref<4xi8>, %y: memref<4xi8>) -> i32 {
  func.call @body(%x, %y) : (memref<4xi8>, memref<4xi8>) -> ()
  %z = arith.constant 0 : i32
  func.return %z : i32
}

// CHECK:      llvm.func internal @body(%[[X:.*]]: !llvm.ptr, %[[Y:.*]]: !llvm.ptr) {
// CHECK:        %x = builtin.unrealized_conversion_cast %[[X]] : !llvm.ptr to memref<4xi8>
// CHECK:        llvm.return
// CHECK:      llvm.func @run(%[[X2:.*]]: !llvm.ptr {llvm.noalias}, %[[Y2:.*]]: !llvm.ptr {llvm.noalias}) -> i32 {
// CHECK:        llvm.call @body(%[[X2]], %[[Y2]]) : (!llvm.ptr, !llvm.ptr) -> ()
// CHECK:        llvm.return %z : i32
// CHECK-NOT:  func.

// ALL:      llvm.func internal @body(%[[X:.*]]: !llvm.ptr, %[[Y:.*]]: !llvm.ptr) {
// ALL:        llvm.br ^[[HEAD:.*]](%{{.*}} : i64)
// ALL:        llvm.load
// ALL:        llvm.store
// ALL:      llvm.func @run
// ALL-NOT:  unrealized_conversion_cast
// ALL-NOT:  memref
// ALL-NOT:  scf.
