"""check-loop-legality: the end of a lowering pipeline. Fails loudly (QccError
naming every op type left and where) when an op outside the allowed dialects
survived: after lower-to-loops only builtin/func/memref/scf/arith/math may remain;
with `stage="llvm"` (after the llvm conversions) only builtin.module and llvm ops.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from qcc.errors import QccError

ALLOWED = {"loops": ("builtin.module", "func.", "memref.", "scf.", "arith.", "math.", "llvm.call_intrinsic"),
           "llvm": ("builtin.module", "llvm.")}


def illegal_ops(module: ModuleOp, stage: str) -> Counter:
    allowed = ALLOWED[stage]
    bad = Counter()
    for op in module.walk():
        if not op.name.startswith(allowed):
            name = op.attributes.get("qcc.name")
            bad[f"{op.name}{f' {name.data!r}' if name is not None else ''}"] += 1
    return bad


@dataclass(frozen=True)
class CheckLoopLegalityPass(ModulePass):
    name = "check-loop-legality"
    stage: str = "loops"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.stage not in ALLOWED:
            raise QccError(f"check-loop-legality: stage must be one of {', '.join(ALLOWED)}, got {self.stage!r}")
        bad = illegal_ops(op, self.stage)
        if bad:
            items = [f"{k} (x{n})" if n > 1 else k for k, n in sorted(bad.items())]
            listed = ", ".join(items[:12]) + (f" and {len(items) - 12} more" if len(items) > 12 else "")
            raise QccError(f"ops not lowered to the {self.stage} stage: {listed}")
