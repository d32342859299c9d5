// RUN: qcc-opt %s -p check-loop-legality | filecheck %s
// RUN: not qcc-opt %s -p 'check-loop-legality{stage="llvm"}' 2>&1 | filecheck %s --check-prefix=LLVM
// RUN: not qcc-opt %s -p 'check-loop-legality{stage="tensors"}' 2>&1 | filecheck %s --check-prefix=BAD

// Loop-level IR passes the check unchanged; the same IR is not yet llvm-level, and
// the error names every op type left (with node names where the IR has them).

func.func @f(%m: memref<4xi8>) {
  %c0 = arith.constant 0 : index
  %c4 = arith.constant 4 : index
  %c1 = arith.constant 1 : index
  scf.for %i = %c0 to %c4 step %c1 {
    %v = memref.load %m[%i] : memref<4xi8>
    memref.store %v, %m[%i] {qcc.name = "copy"} : memref<4xi8>
  }
  func.return
}

// CHECK: func.func @f(%m: memref<4xi8>) {
// CHECK: memref.store

// LLVM: qcc-opt: error: ops not lowered to the llvm stage: arith.constant (x3), func.func, func.return, memref.load, memref.store 'copy', scf.for, scf.yield
// LLVM-NOT: Traceback
// BAD: qcc-opt: error: check-loop-legality: stage must be one of loops, llvm, got 'tensors'
