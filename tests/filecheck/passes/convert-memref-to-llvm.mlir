// RUN: qcc-opt %s -p convert-memref-to-llvm | filecheck %s

// Flat memrefs are pointers: globals become internal llvm globals (the arena
// without a value), get_global an addressof, view a byte GEP, load/store a GEP
// with the element's alignment; index is i32 as the module attribute says.

builtin.module attributes {qcc.index_bits = 32 : i64} {
  "memref.global"() <{sym_name = "qcc_arena", type = memref<64xi8>, initial_value, sym_visibility = "private", alignment = 16 : i64}> : () -> ()
  "memref.global"() <{sym_name = "qcc_w1", type = memref<3xi16>, initial_value = dense<[1, -2, 3]> : tensor<3xi16>, sym_visibility = "private", constant, alignment = 16 : i64}> : () -> ()
  func.func @f(%out: memref<3xi16>, %i: index) -> index {
    %a = memref.get_global @qcc_arena : memref<64xi8>
    %c16 = arith.constant 16 : index
    %v = memref.view %a[%c16][] : memref<64xi8> to memref<3xi16>
    %w = memref.get_global @qcc_w1 : memref<3xi16>
    %x = memref.load %w[%i] : memref<3xi16>
    memref.store %x, %v[%i] : memref<3xi16>
    memref.store %x, %out[%i] : memref<3xi16>
    %p = "memref.extract_aligned_pointer_as_index"(%out) : (memref<3xi16>) -> index
    func.return %p : index
  }
  func.func @g(%bytes: memref<8xi8>, %j: index) -> i32 {
    %c0 = arith.constant 0 : index
    %words = memref.view %bytes[%c0][] : memref<8xi8> to memref<2xi32>
    %v = memref.load %words[%j] {qcc.align = 1 : i64} : memref<2xi32>
    func.return %v : i32
  }
}

// CHECK:      llvm.mlir.global internal @qcc_arena() {addr_space = 0 : i32, alignment = 16 : i64} : !llvm.array<64 x i8>
// CHECK-NEXT: llvm.mlir.global internal constant @qcc_w1(dense<[1, -2, 3]> : tensor<3xi16>) {addr_space = 0 : i32, alignment = 16 : i64} : !llvm.array<3 x i16>
// CHECK:      func.func @f(%out: memref<3xi16>, %i: index) -> index {
// CHECK-NEXT:   %[[A:.*]] = llvm.mlir.addressof @qcc_arena : !llvm.ptr
// CHECK:        %[[OFF:.*]] = builtin.unrealized_conversion_cast %c16 : index to i32
// CHECK-NEXT:   %[[V:.*]] = llvm.getelementptr inbounds %[[A]][%[[OFF]]] : (!llvm.ptr, i32) -> !llvm.ptr, i8
// CHECK:        %[[W:.*]] = llvm.mlir.addressof @qcc_w1 : !llvm.ptr
// CHECK:        %[[I:.*]] = builtin.unrealized_conversion_cast %i : index to i32
// CHECK-NEXT:   %[[G:.*]] = llvm.getelementptr inbounds %[[W]][%[[I]]] : (!llvm.ptr, i32) -> !llvm.ptr, i16
// CHECK-NEXT:   %[[X:.*]] = llvm.load %[[G]] {alignment = 2 : i64} : !llvm.ptr -> i16
// CHECK:        %[[G2:.*]] = llvm.getelementptr inbounds %[[V]][%{{.*}}] : (!llvm.ptr, i32) -> !llvm.ptr, i16
// CHECK-NEXT:   llvm.store %[[X]], %[[G2]] {alignment = 2 : i64} : i16, !llvm.ptr
// CHECK:        %[[P:.*]] = builtin.unrealized_conversion_cast %out : memref<3xi16> to !llvm.ptr
// CHECK:        llvm.ptrtoint %{{.*}} : !llvm.ptr to i32

// A word load of a byte buffer marked qcc.align (lower-to-loops' DSP dot products) keeps that alignment.
// CHECK:      func.func @g
// CHECK:        llvm.getelementptr inbounds %{{.*}}[%{{.*}}] : (!llvm.ptr, i32) -> !llvm.ptr, i32
// CHECK-NEXT:   llvm.load %{{.*}} {alignment = 1 : i64} : !llvm.ptr -> i32
// CHECK-NOT:  memref.
