"""Importer fuzzing: damaged and malformed models are refused with one clear line
(QccError, exit status 2) — never a traceback, never an internal error.

Mutations: truncated and byte-flipped protobufs, attributes of the wrong type,
cyclic and dangling edges, duplicate producers, bad initializers, bad opsets.
"""

import subprocess
import sys

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from conftest import MODELS
from qcc.cli import main as qcc_main

SEED = (MODELS / "lenet_digits.onnx").read_bytes()
SEED_MODEL = onnx.load_model_from_string(SEED)
FUZZ = settings(max_examples=int(__import__("os").environ.get("QCC_FUZZ_EXAMPLES", "100")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def inputs_npz(tmp_path_factory):
    p = tmp_path_factory.mktemp("fuzz") / "in.npz"
    np.savez(p, input=np.zeros((1, 1, 32, 32), np.float32))
    return p


def interpret_status(model_bytes: bytes, inputs_npz, tmp_path, capsys) -> tuple[int, str]:
    path = tmp_path / "m.onnx"
    path.write_bytes(model_bytes)
    out = tmp_path / "o.npz"
    if out.exists():
        out.unlink()
    rc = qcc_main(["interpret", str(path), "--inputs", str(inputs_npz), "--output", str(out), "-q"])
    err = capsys.readouterr().err
    if rc != 0:
        assert not out.exists()
    return rc, err


def check(rc: int, err: str) -> None:
    assert rc in (0, 2), err  # 3 would be an internal error: a qcc bug
    assert "Traceback" not in err
    if rc == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("qcc: error: "), err


@FUZZ
@given(cut=st.integers(0, len(SEED) - 1))
def test_truncated_protobuf(cut, inputs_npz, tmp_path, capsys):
    check(*interpret_status(SEED[:cut], inputs_npz, tmp_path, capsys))


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, len(SEED) - 1), st.integers(1, 255)), min_size=1, max_size=8))
def test_mutated_protobuf(flips, inputs_npz, tmp_path, capsys):
    data = bytearray(SEED)
    for pos, x in flips:
        data[pos] ^= x
    check(*interpret_status(bytes(data), inputs_npz, tmp_path, capsys))


def _copy() -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(SEED_MODEL)
    return m


_WRONG_VALUES = [
    helper.make_attribute("x", 1.5), helper.make_attribute("x", "same"), helper.make_attribute("x", [1, 2, 3]),
    helper.make_attribute("x", [0.5, 0.5]), helper.make_attribute("x", 7), helper.make_attribute("x", -3),
    helper.make_attribute("x", numpy_helper.from_array(np.zeros(3, np.float32))),
    helper.make_attribute("x", ["a", "b"]),
]


@FUZZ
@given(node=st.integers(0, len(SEED_MODEL.graph.node) - 1), which=st.integers(0, 7), value=st.integers(0, 7))
def test_wrong_attribute_types_and_values(node, which, value, inputs_npz, tmp_path, capsys):
    m = _copy()
    n = m.graph.node[node]
    a = onnx.AttributeProto()
    a.CopyFrom(_WRONG_VALUES[value])
    if len(n.attribute) and which < len(n.attribute):
        a.name = n.attribute[which].name
        n.attribute[which].CopyFrom(a)
    else:
        a.name = ["group", "kernel_shape", "axis", "alpha", "perm", "pads", "strides", "mode"][which]
        n.attribute.append(a)
    check(*interpret_status(m.SerializeToString(), inputs_npz, tmp_path, capsys))


@FUZZ
@given(src=st.integers(0, len(SEED_MODEL.graph.node) - 1), dst=st.integers(0, len(SEED_MODEL.graph.node) - 1),
       slot=st.integers(0, 2), kind=st.sampled_from(["rewire", "dangling", "duplicate", "drop_node", "self"]))
def test_graph_edges(src, dst, slot, kind, inputs_npz, tmp_path, capsys):
    m = _copy()
    nodes = m.graph.node
    target = nodes[dst]
    slot = min(slot, len(target.input) - 1)
    if kind == "rewire":  # may create a cycle (src after dst) or a type/shape clash
        target.input[slot] = nodes[src].output[0]
    elif kind == "dangling":
        target.input[slot] = "nobody_makes_this"
    elif kind == "duplicate":
        nodes[src].output[0] = target.output[0]
    elif kind == "drop_node":
        del nodes[src]
    else:
        target.input[slot] = target.output[0]
    rc, err = interpret_status(m.SerializeToString(), inputs_npz, tmp_path, capsys)
    check(rc, err)
    if kind in ("dangling", "self", "duplicate") and not (kind == "duplicate" and src == dst):
        assert rc == 2


@FUZZ
@given(idx=st.integers(0, len(SEED_MODEL.graph.initializer) - 1),
       kind=st.sampled_from(["reshape", "dtype", "truncate_raw", "drop"]))
def test_bad_initializers(idx, kind, inputs_npz, tmp_path, capsys):
    m = _copy()
    t = m.graph.initializer[idx]
    arr = numpy_helper.to_array(t)
    if kind == "reshape":
        new = numpy_helper.from_array(arr.reshape(-1)[: max(1, arr.size // 2)].copy(), t.name)
    elif kind == "dtype":
        new = numpy_helper.from_array(arr.astype(np.int32) if arr.dtype != np.int32 else arr.astype(np.float32), t.name)
    elif kind == "truncate_raw":
        new = numpy_helper.from_array(arr, t.name)
        new.raw_data = new.raw_data[: len(new.raw_data) // 2 + 1]
    else:
        del m.graph.initializer[idx]
        new = None
    if new is not None:
        t.CopyFrom(new)
    check(*interpret_status(m.SerializeToString(), inputs_npz, tmp_path, capsys))


@pytest.mark.parametrize("opset,ir", [(1, 8), (6, 3), (99, 8), (18, 999)])
def test_unsupported_versions_are_named(opset, ir, inputs_npz, tmp_path, capsys):
    m = _copy()
    m.opset_import[0].version = opset
    m.ir_version = ir
    rc, err = interpret_status(m.SerializeToString(), inputs_npz, tmp_path, capsys)
    check(rc, err)
    assert rc == 2


def test_the_installed_script_prints_no_traceback(tmp_path, inputs_npz):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(SEED[: len(SEED) // 3])
    r = subprocess.run([sys.executable, "-m", "qcc.cli", "interpret", str(bad), "--inputs", str(inputs_npz),
                        "--output", str(tmp_path / "o.npz")], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("qcc: error: ") and "bad.onnx" in r.stderr
