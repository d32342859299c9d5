"""qcc against the ONNX backend conformance suite.

Enumerates the conformance cases shipped with the pinned `onnx` package:

* ``node``: every case of ``onnx.backend.test.case.node.collect_testcases()``
  (one-node models, their ``_expanded`` function bodies and type variants);
* ``pytorch-converted`` and ``pytorch-operator``: the model directories under
  ``onnx/backend/test/data/`` (``model.onnx`` + ``test_data_set_*``).

Each case is imported with ``qcc.import_model`` (the graph inputs bound to the
shapes of the test data), run once per data set with
``qcc.interpreter.run_main``, and its outputs compared exactly as the official
runner does (``onnx.backend.test.runner.Runner.assert_similar_outputs``:
output count, then per output shape, dtype, and ``assert_allclose`` at the
case's rtol/atol; bfloat16 at two ulps). On top of that every output must have
the static type the imported ``@main`` declares.

qcc compiles static shapes. When an output shape (or a branch, or a trip count)
depends on the *value* of a graph input, the importer raises
``DynamicShapeError``; the harness then freezes those inputs to their test
values (turns them into initializers) and imports again, as a qcc user would.
Such passes are counted in the ``frozen`` column; ``--no-freeze`` disables it.

Skipped cases are listed in ``skips.txt`` next to this file, one per line:
``case_name  reason``. Rates are passed / total over every collected case
(skips count as not passed), and again over the cases whose ops all are in
``qcc.dialects.onnx.ONNX_OP_TYPES``.

    python tests/conformance/conformance.py [-k SUBSTRING] [--suite S] [--failures]
        [--check-skips] [--no-freeze] [--slowest N]
"""

from __future__ import annotations

import argparse
import functools
import glob
import os
import sys
import time
import traceback
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

SUITES = ("node", "pytorch-converted", "pytorch-operator")
SKIPS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "skips.txt")
DATA_DIR = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
NODE_PASS_RATE = 0.95
#: freeze shape-deciding graph inputs to their test values when qcc asks for it
FREEZE = True


# ---------------------------------------------------------------------- cases


@dataclass
class Case:
    name: str
    suite: str
    rtol: float = 1e-3
    atol: float = 1e-7
    model_dir: str | None = None
    _model: onnx.ModelProto | None = field(default=None, repr=False)
    _data_sets: list | None = field(default=None, repr=False)

    @property
    def model(self) -> onnx.ModelProto:
        if self._model is None:
            self._model = onnx.load(os.path.join(self.model_dir, "model.onnx"))
        return self._model

    @property
    def data_sets(self) -> list[tuple[list[Any], list[Any]]]:
        """[(inputs, expected outputs)], values as the official runner loads them."""
        if self._data_sets is None:
            self._data_sets = _load_data_dirs(self.model, self.model_dir)
        return [
            ([_normalize(v) for v in ins], [_normalize(v) for v in outs])
            for ins, outs in self._data_sets
        ]

    @functools.cached_property
    def op_types(self) -> frozenset[str]:
        """Op types of every node (subgraphs included); non-default domains as 'domain::Op'."""
        return frozenset(_graph_ops(self.model.graph))

    @property
    def supported_ops(self) -> bool:
        from qcc.dialects.onnx import ONNX_OP_TYPES

        return all(t in ONNX_OP_TYPES for t in self.op_types)


def _graph_ops(g: onnx.GraphProto) -> Iterable[str]:
    for n in g.node:
        yield n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}"
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from _graph_ops(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for sg in a.graphs:
                    yield from _graph_ops(sg)


def _normalize(v: Any) -> Any:
    if isinstance(v, onnx.TensorProto):
        return numpy_helper.to_array(v)
    return v


def _load_data_dirs(model: onnx.ModelProto, model_dir: str) -> list:
    """The official runner's loading of ``test_data_set_*`` (Runner._load_proto)."""

    def load(path: str, tp: onnx.TypeProto) -> Any:
        with open(path, "rb") as f:
            raw = f.read()
        if tp.HasField("sequence_type"):
            s = onnx.SequenceProto()
            s.ParseFromString(raw)
            return numpy_helper.to_list(s)
        if tp.HasField("optional_type"):
            o = onnx.OptionalProto()
            o.ParseFromString(raw)
            return numpy_helper.to_optional(o)
        t = onnx.TensorProto()
        t.ParseFromString(raw)
        return numpy_helper.to_array(t)

    sets = []
    for d in sorted(glob.glob(os.path.join(model_dir, "test_data_set*"))):
        n_in = len(glob.glob(os.path.join(d, "input_*.pb")))
        n_out = len(glob.glob(os.path.join(d, "output_*.pb")))
        ins = [load(os.path.join(d, f"input_{i}.pb"), model.graph.input[i].type) for i in range(n_in)]
        outs = [load(os.path.join(d, f"output_{i}.pb"), model.graph.output[i].type) for i in range(n_out)]
        sets.append((ins, outs))
    return sets


@functools.cache
def collect_cases() -> dict[str, Case]:
    """Every conformance case by name, node suite first (names are unique)."""
    from onnx.backend.test.case.node import collect_testcases
    from onnx.backend.test.loader import load_model_tests

    cases: dict[str, Case] = {}
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        node = collect_testcases()
    for tc in sorted(node, key=lambda t: t.name):
        cases[tc.name] = Case(tc.name, "node", tc.rtol, tc.atol, None, tc.model, list(tc.data_sets))
    for suite in SUITES[1:]:
        for tc in sorted(load_model_tests(kind=suite), key=lambda t: t.name):
            assert tc.name not in cases, tc.name
            cases[tc.name] = Case(tc.name, suite, tc.rtol, tc.atol, tc.model_dir)
    return cases


# ---------------------------------------------------------------------- skips


def load_skips(path: str = SKIPS_FILE) -> dict[str, str]:
    """case name -> reason, from ``case_name  reason`` lines (``#`` starts a comment)."""
    skips: dict[str, str] = {}
    if not os.path.exists(path):
        return skips
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split(None, 1)
            if len(parts) != 2:
                raise ValueError(f"{path}:{lineno}: expected 'case_name  reason'")
            name, reason = parts
            if name in skips:
                raise ValueError(f"{path}:{lineno}: {name} listed twice")
            skips[name] = reason.strip()
    return skips


# ---------------------------------------------------------------------- running


def _assert_similar_outputs(ref_outputs, outputs, rtol, atol, model_dir=None) -> None:
    from onnx.backend.test.runner import Runner

    Runner.assert_similar_outputs(ref_outputs, outputs, rtol, atol, model_dir=model_dir)


def _upstream_inputs(graph: onnx.GraphProto, tensor: str, inputs: set[str]) -> set[str]:
    """Graph inputs among `inputs` that `tensor` is computed from.

    Subgraphs count: a node's inputs include what its subgraphs read, and a
    subgraph input stands for its owner's inputs. Tensors the importer made
    while unrolling control flow are named `<scope>/<name>`; the longest
    known suffix is used.
    """
    producer: dict[str, list[str]] = {}  # tensor -> tensors it is computed from

    def nested_reads(n: onnx.NodeProto) -> list[str]:
        reads = [x for x in n.input if x]
        for a in n.attribute:
            for sg in ([a.g] if a.type == onnx.AttributeProto.GRAPH else
                       list(a.graphs) if a.type == onnx.AttributeProto.GRAPHS else []):
                for m in sg.node:
                    reads += nested_reads(m)
        return reads

    def walk(g: onnx.GraphProto, owner_reads: list[str] | None) -> None:
        if owner_reads is not None:
            for vi in g.input:
                producer.setdefault(vi.name, owner_reads)
        for n in g.node:
            reads = nested_reads(n)
            for o in n.output:
                if o:
                    producer[o] = reads
            for a in n.attribute:
                for sg in ([a.g] if a.type == onnx.AttributeProto.GRAPH else
                           list(a.graphs) if a.type == onnx.AttributeProto.GRAPHS else []):
                    walk(sg, reads)

    walk(graph, None)
    parts = tensor.split("/")
    start = next((("/".join(parts[i:])) for i in range(len(parts))
                  if "/".join(parts[i:]) in producer or "/".join(parts[i:]) in inputs), tensor)
    seen, todo, found = set(), [start], set()
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        if t in inputs:
            found.add(t)
        elif t in producer:
            todo.extend(producer[t])
    return found


def _freeze(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> onnx.ModelProto:
    """`model` with the graph inputs in `values` turned into initializers."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    keep = [vi for vi in m.graph.input if vi.name not in values]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    for name, v in values.items():
        m.graph.initializer.append(numpy_helper.from_array(np.asarray(v), name))
    return m


def run_case(case: Case) -> list[str]:
    """Imports and runs `case`; raises (AssertionError, QccError, ...) when it fails.

    qcc compiles static shapes: when the importer reports that an output shape
    depends on the value of a graph input (`DynamicShapeError`), that input is
    frozen to its test value (made an initializer) and the import retried, as
    a user of qcc would do. Returns the names of the frozen inputs.

    Beyond the official comparison, every output must have the shape and dtype
    that the imported @main declares (a static type that lies is a failure).
    """
    import qcc
    from qcc.dialects.onnx import numpy_dtype
    from qcc.importer import DynamicShapeError
    from qcc.interpreter import main_func, run_main

    model = case.model
    init_names = {t.name for t in model.graph.initializer}
    graph_inputs = [vi.name for vi in model.graph.input if vi.name not in init_names]
    frozen: set[str] = set()
    for inputs, ref_outputs in case.data_sets:
        feeds: dict[str, Any] = {}
        for vi, v in zip(model.graph.input, inputs):
            feeds[vi.name] = np.asarray(v) if isinstance(v, np.generic) else v
        missing = [n for n in graph_inputs if n not in feeds]
        if missing:
            raise AssertionError(f"test data gives no value for input(s) {missing}")
        overridden = [n for n in feeds if n in init_names]
        if overridden:
            raise AssertionError(f"test data overrides initializer(s) {overridden}")
        for n in graph_inputs:
            if not isinstance(feeds[n], np.ndarray):
                raise AssertionError(f"input '{n}' is a {type(feeds[n]).__name__}, not a tensor")
        while True:
            real = [n for n in graph_inputs if n not in frozen]
            shapes = {n: tuple(feeds[n].shape) for n in real}
            try:
                module = qcc.import_model(_freeze(model, {n: feeds[n] for n in frozen}) if frozen else model, shapes)
            except DynamicShapeError as e:
                more = _upstream_inputs(model.graph, e.tensor, set(graph_inputs)) - frozen
                if not more or not FREEZE:
                    raise
                frozen |= more
                continue
            break
        fn = main_func(module)
        assert len(fn.args) == len(real), "imported @main takes other inputs than the graph"
        with np.errstate(all="ignore"):
            outs = run_main(module, [feeds[n] for n in real])
        outs = [np.asarray(o) for o in outs]
        _assert_similar_outputs(ref_outputs, outs, case.rtol, case.atol, case.model_dir)
        for i, (o, t) in enumerate(zip(outs, fn.function_type.outputs.data)):
            want = (tuple(int(d) for d in t.get_shape()), numpy_dtype(t.element_type))
            if (o.shape, o.dtype) != want:
                raise AssertionError(
                    f"output {i}: @main declares {want[1]}{list(want[0])}, the run gave {o.dtype}{list(o.shape)}"
                )
    return sorted(frozen)


@dataclass
class Result:
    case: Case
    status: str  # "pass" | "fail" | "skip"
    message: str = ""
    seconds: float = 0.0
    exc_type: str = ""
    frozen: list[str] = field(default_factory=list)  # inputs frozen to constants


_RESULTS: dict[str, Result] = {}


def result_of(case: Case, skips: dict[str, str] | None = None, *, run_skipped: bool = False) -> Result:
    """Runs `case` once per process (memoized); skipped cases are not run."""
    skips = load_skips() if skips is None else skips
    if case.name in skips and not run_skipped:
        return Result(case, "skip", skips[case.name])
    r = _RESULTS.get(case.name)
    if r is not None:
        return r
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frozen = run_case(case)
        r = Result(case, "pass", frozen=frozen)
    except Exception as e:  # noqa: BLE001 - every failure is a result
        msg = " ".join(str(e).split())
        if not msg:
            msg = traceback.format_exc().strip().splitlines()[-1]
        r = Result(case, "fail", msg, exc_type=type(e).__name__)
    r.seconds = time.perf_counter() - t0
    _RESULTS[case.name] = r
    return r


@dataclass
class Summary:
    suite: str
    total: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    sup_total: int = 0
    sup_passed: int = 0
    frozen: int = 0  # passes that needed shape-deciding inputs frozen

    @property
    def rate(self) -> float:
        return self.passed / self.total if self.total else 1.0

    @property
    def sup_rate(self) -> float:
        return self.sup_passed / self.sup_total if self.sup_total else 1.0


def summarize(results: Iterable[Result]) -> dict[str, Summary]:
    out = {s: Summary(s) for s in (*SUITES, "all")}
    for r in results:
        for key in (r.case.suite, "all"):
            s = out[key]
            s.total += 1
            s.passed += r.status == "pass"
            s.failed += r.status == "fail"
            s.skipped += r.status == "skip"
            s.frozen += r.status == "pass" and bool(r.frozen)
            if r.case.supported_ops:
                s.sup_total += 1
                s.sup_passed += r.status == "pass"
    return out


def node_pass_rate() -> float:
    """passed / total over the whole node suite (runs what has not run yet)."""
    skips = load_skips()
    cases = [c for c in collect_cases().values() if c.suite == "node"]
    passed = sum(result_of(c, skips).status == "pass" for c in cases)
    return passed / len(cases)


def format_table(summaries: dict[str, Summary]) -> str:
    head = (f"{'suite':<18} {'total':>6} {'passed':>6} {'failed':>6} {'skipped':>7} {'rate':>7}"
            f"   {'supported-op cases':>18} {'rate':>7}   {'frozen':>6}")
    lines = [head, "-" * len(head)]
    for s in summaries.values():
        lines.append(
            f"{s.suite:<18} {s.total:>6} {s.passed:>6} {s.failed:>6} {s.skipped:>7} {s.rate:>7.2%}   "
            f"{f'{s.sup_passed}/{s.sup_total}':>18} {s.sup_rate:>7.2%}   {s.frozen:>6}"
        )
    lines.append(
        "rate = passed / total (skips count as not passed); supported-op cases: every op in "
        "ONNX_OP_TYPES; frozen: passes whose shape-deciding inputs were frozen to their test values"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-k", dest="substr", help="only cases whose name contains this")
    p.add_argument("--suite", choices=SUITES, action="append", help="only this suite (repeatable)")
    p.add_argument("--failures", action="store_true", help="list every failure with its message")
    p.add_argument("--check-skips", action="store_true",
                   help="also run the skipped cases and list those that would pass")
    p.add_argument("--slowest", type=int, default=0, help="list the N slowest cases")
    p.add_argument("--no-freeze", action="store_true",
                   help="never freeze shape-deciding inputs (such cases then fail)")
    args = p.parse_args(argv)
    global FREEZE
    FREEZE = not args.no_freeze

    skips = load_skips()
    cases = list(collect_cases().values())
    unknown = sorted(set(skips) - {c.name for c in cases})
    if args.suite:
        cases = [c for c in cases if c.suite in args.suite]
    if args.substr:
        cases = [c for c in cases if args.substr in c.name]
    t0 = time.perf_counter()
    results = [result_of(c, skips) for c in cases]
    elapsed = time.perf_counter() - t0

    if args.failures:
        for r in results:
            if r.status == "fail":
                print(f"FAIL {r.case.name}: {r.exc_type}: {r.message[:300]}")
    if args.check_skips:
        for c in cases:
            if c.name in skips:
                r = result_of(c, skips, run_skipped=True)
                if r.status == "pass":
                    print(f"SKIPPED BUT PASSES {c.name}")
    if args.slowest:
        for r in sorted(results, key=lambda r: -r.seconds)[: args.slowest]:
            print(f"{r.seconds:7.2f}s {r.case.name}")
    if unknown:
        print(f"skips.txt names unknown cases: {', '.join(unknown)}")
    print(format_table(summarize(results)))
    print(f"ran {sum(r.status != 'skip' for r in results)} cases in {elapsed:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
