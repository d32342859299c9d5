"""Patch-by-patch execution of the stage that `tile-patches` marked.

The interpreter (`qcc.interpreter.run_main`) hands a module whose split op
carries `qcc.patch_grid` to `runner(module, plan)`. The runner executes @main
with the interpreter's own per-op kernels (float `KERNELS` for `onnx` ops, the
bit-exact `qcc.int_kernels` for `quant` ops), in program order, except that the
stage before the split runs once per patch of the n x n grid on tiles: each op
computes exactly the region of its result that the patch needs
(`qcc.receptive_field.analyze`), from slices of its operands' tiles. A window op
(conv, pool, pad) on a tile gets the padding only where the tile touches the
tensor's border, so padding values (the zero point for integer convs, -inf for
max pools, the valid-element count of average pools) are those of the whole
tensor: at uniform int8 the result is bit-exact with layer-by-layer execution.
The split tensor is assembled from the patches; the rest runs layer by layer.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
from xdsl.ir import Operation

from qcc import receptive_field as rf
from qcc.dialects import quant as q

GRID_ATTR = "qcc.patch_grid"


class PatchRunner:
    def __init__(self, module, plan, g: rf.Graph, split: int, grid: tuple[int, int]):
        from qcc.interpreter import main_func

        rf.check_split(g, split, grid)
        self.plan = plan
        self.a = a = rf.analyze(g, split, grid)
        self.slot: dict[Any, int] = {arg: k for k, arg in enumerate(main_func(module).args)}
        for st in plan.steps:
            for r, s in zip(st[0].results, st[4]):
                self.slot[r] = s
        self.stage = [op for op in a.stage if op.results[0] in a.regions]
        self.skip = set(a.stage)
        self.split_op = g.ops[split]
        self.step_of = {st[0]: st for st in plan.steps}
        self._kernels: dict[tuple, Callable] = {}
        self.windows = {op: g.wins[op] for op in self.stage if op in g.wins}
        from qcc.patch_precision import PRECISION_ATTR

        # value-driven precision (qcc.patch_precision): op -> (zero point, bits, outlier threshold)
        self.low = {op: (q.qparams_of(op.results[0].type).zero_point[0], *rf.attr_of(op, PRECISION_ATTR))
                    for op in self.stage if PRECISION_ATTR in op.attributes}
        self.observer: Callable | None = None  # (op, 8-bit tile, i, j), for calibration
        self.outlier_tiles = {op: [0, 0] for op in self.low}  # op -> [outlier tiles, tiles] seen

    # ------------------------------------------------------------ per op
    def _window_kernel(self, op: Operation, pads: tuple[int, int, int, int]) -> Callable:
        """The op's kernel with padding `pads` (top, left, bottom, right) on a tile."""
        key = (op, pads)
        k = self._kernels.get(key)
        if k is not None:
            return k
        st = self.step_of[op]
        if isinstance(op, q.QuantOp):
            from qcc.dialects.onnx import py_attr
            from qcc.int_kernels import prepare

            attrs = dict(op.attributes)
            if isinstance(op, q.PadOp):
                old = list(rf.attr_of(op, "pads"))
                full = [0, old[1], pads[0], pads[1], 0, old[5], pads[2], pads[3]]
            else:
                full = list(pads)
                if "ceil_mode" in attrs:
                    attrs["ceil_mode"] = py_attr(0)
            attrs["pads"] = py_attr([int(v) for v in full])
            clone = type(op)(list(op.operands), [op.results[0].type], attrs)
            try:
                run = prepare(clone)
            finally:
                clone.drop_all_references()
            k = lambda vals: run(vals)  # noqa: E731
        else:
            attrs = {**st[2], "pads": list(pads)}
            if "auto_pad" in attrs:
                attrs["auto_pad"] = "NOTSET"
            if "ceil_mode" in attrs:
                attrs["ceil_mode"] = 0
            kernel, opset = st[1], self.plan.opset
            k = lambda vals: kernel(vals, attrs, opset)[0]  # noqa: E731
        self._kernels[key] = k
        return k

    def _patch(self, env: list, i: int, j: int) -> tuple[np.ndarray, tuple[int, int]]:
        a = self.a
        x = a.g.input
        tiles: dict[Any, tuple[np.ndarray, int, int]] = {x: (env[self.slot[x]], 0, 0)}

        def fetch(v, h0, h1, w0, w1):
            if v not in tiles:  # a constant operand
                return env[self.slot[v]]
            arr, oh, ow = tiles[v]
            return arr[:, :, h0 - oh:h1 - oh, w0 - ow:w1 - ow]

        for op in self.stage:
            r = op.results[0]
            (hl, hh), (wl, wh) = a.regions[r]
            h0, h1, w0, w1 = int(hl[i]), int(hh[i]), int(wl[j]), int(wh[j])
            wins = self.windows.get(op)
            if wins is None:  # pointwise: the same region of every operand
                vals = [fetch(v, h0, h1, w0, w1) for v in op.operands]
                st = self.step_of[op]
                out = st[1](vals, st[2], self.plan.opset)[0]
            else:
                xs = rf.shape_of(op.operands[0])
                (uh0, uh1), (uw0, uw1) = wins[0].needs(h0, h1), wins[1].needs(w0, w1)
                ch0, ch1, cw0, cw1 = max(0, uh0), min(xs[2], uh1), max(0, uw0), min(xs[3], uw1)
                pads = (ch0 - uh0, cw0 - uw0, uh1 - ch1, uw1 - cw1)
                vals = [fetch(op.operands[0], ch0, ch1, cw0, cw1),
                        *(env[self.slot[v]] for v in op.operands[1:])]
                out = self._window_kernel(op, pads)(vals)
            out = np.asarray(out)
            assert out.shape[2:] == (h1 - h0, w1 - w0), (op.name, out.shape, (h1 - h0, w1 - w0))
            if self.observer is not None:
                self.observer(op, out, i, j)
            low = self.low.get(op)
            if low is not None:
                from qcc.patch_precision import snap

                out, outlier = snap(out, *low)
                seen = self.outlier_tiles[op]
                seen[0] += int(outlier.sum())
                seen[1] += len(outlier)
            tiles[r] = (out, h0, w0)
        y = tiles[self.split_op.results[0]]
        return y[0], (y[1], y[2])

    def stage_output(self, env: list) -> np.ndarray:
        a = self.a
        y = None
        for i in range(a.grid[0]):
            for j in range(a.grid[1]):
                tile, (h0, w0) = self._patch(env, i, j)
                if y is None:
                    shape = rf.shape_of(a.split_value)
                    y = np.empty((tile.shape[0], tile.shape[1], *shape[2:]), tile.dtype)
                y[:, :, h0:h0 + tile.shape[2], w0:w0 + tile.shape[3]] = tile
        return y

    # ------------------------------------------------------------ the graph
    def __call__(self, args, batch: int | None) -> tuple:
        plan = self.plan
        args = tuple(args)
        env: list[Any] = [None] * plan.nslots
        env[: plan.nargs] = args
        for s, v in plan.consts.items():
            env[s] = v
        with np.errstate(all="ignore"):
            for op, kernel, attrs, ins, outs, patch, folded in plan.steps:
                if folded is not None:
                    continue
                if op is self.split_op:
                    env[outs[0]] = self.stage_output(env)
                elif op not in self.skip:
                    plan._step(env, op, kernel, attrs, ins, outs, patch, range(len(outs)), batch, plan.opset)
        return tuple(env[s] for s in plan.returns)


_RUNNERS: "weakref.WeakKeyDictionary[Any, PatchRunner | None]" = weakref.WeakKeyDictionary()


def runner(module, plan) -> PatchRunner | None:
    """The patch runner of `plan`'s module, or None when no op carries `qcc.patch_grid`."""
    if plan in _RUNNERS:
        return _RUNNERS[plan]
    r = None
    if any(GRID_ATTR in st[0].attributes for st in plan.steps):
        g = rf.graph(module)
        found = rf.find_split(g, GRID_ATTR)
        r = None if found is None else PatchRunner(module, plan, g, *found)
    _RUNNERS[plan] = r
    return r
