"""Whole-model agreement with onnxruntime: the project's trained models and the
structures bundled in onnx/backend/test/data/light (all nine)."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import qcc
from conftest import DIGIT_MODELS, MODELS, light_models_dir, ort_run, rel_err

TOL = 1e-4  # max abs error <= 1e-4 x max abs reference
LIGHT = sorted(p.name[: -len(".onnx")] for p in light_models_dir().glob("light_*.onnx"))


def test_all_nine_light_models_are_there():
    assert len(LIGHT) == 9


@pytest.mark.parametrize("name", DIGIT_MODELS)
def test_digit_model_matches_onnxruntime_and_recorded_accuracy(name, digits_test):
    path = MODELS / f"{name}.onnx"
    got = qcc.interpret(path, {"input": digits_test["input"]})["logits"]
    ref = ort_run(path, {"input": digits_test["input"]})[0]
    assert rel_err(got, ref) <= TOL
    acc = float((got.argmax(1) == digits_test["label"]).mean())
    recorded = json.loads((MODELS / "accuracy.json").read_text())["models"][name]["test_accuracy"]
    assert abs(acc - recorded) < 1e-9
    assert acc > 0.95


def _random_input(model: onnx.ModelProto, rng) -> dict[str, np.ndarray]:
    inits = {i.name for i in model.graph.initializer}
    feeds = {}
    for i in model.graph.input:
        if i.name not in inits:
            shape = [d.dim_value or 1 for d in i.type.tensor_type.shape.dim]
            feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def _with_random_weights(model: onnx.ModelProto, rng) -> onnx.ModelProto:
    """The light models fill weights with ConstantOfShape; give them real random
    values (He-scaled) so that agreement is checked on non-trivial numbers."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    keep, new_inits = [], []
    for n in m.graph.node:
        if n.op_type == "ConstantOfShape" and n.input[0] in inits:
            shape = tuple(int(d) for d in inits[n.input[0]])
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            scale = np.sqrt(2.0 / fan_in) if len(shape) > 1 else 0.1
            arr = (rng.standard_normal(shape) * scale).astype(np.float32)
            if len(shape) == 1:  # BN scales/variances stay positive
                arr = np.abs(arr) + 0.5
            new_inits.append(numpy_helper.from_array(arr, n.output[0]))
        else:
            keep.append(n)
    del m.graph.node[:]
    m.graph.node.extend(keep)
    m.graph.initializer.extend(new_inits)
    return m


def _softmax_input_as_output(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """The same model with the final Softmax's input exposed as the output."""
    last = model.graph.node[-1]
    if last.op_type != "Softmax":
        return None
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.node[-1]
    del m.graph.output[:]
    m.graph.output.append(onnx.helper.make_tensor_value_info(last.input[0], onnx.TensorProto.FLOAT, None))
    return m


@pytest.mark.parametrize("name", LIGHT)
def test_light_model_matches_onnxruntime(name):
    model = onnx.load(light_models_dir() / f"{name}.onnx")
    feeds = _random_input(model, np.random.default_rng(0))
    from qcc.interpreter import run_main

    logits_model = _softmax_input_as_output(model)
    if logits_model is not None:
        (logits,) = run_main(qcc.import_model(logits_model), [feeds[k] for k in feeds])
        (ref_logits,) = ort_run(logits_model, feeds)
        assert rel_err(logits, ref_logits) <= TOL
        if np.abs(ref_logits).max() > 1e6 and np.ptp(ref_logits) == 0:
            # Weights made by ConstantOfShape give every class the same logit, here
            # ~1e9; float32 BLAS sums channels in different orders (1-ulp spread),
            # which Softmax at this scale turns into anything. Only the logits are
            # a meaningful comparison for such a model.
            return
    got = run_main(qcc.import_model(model), [feeds[k] for k in feeds])
    ref = ort_run(model, feeds)
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert rel_err(g, r) <= TOL


@pytest.mark.parametrize("name", [n for n in LIGHT if n not in ("light_vgg19", "light_bvlc_alexnet", "light_zfnet512")])
def test_light_model_with_random_weights_matches_onnxruntime(name):
    rng = np.random.default_rng(1)
    model = _with_random_weights(onnx.load(light_models_dir() / f"{name}.onnx"), rng)
    feeds = _random_input(model, rng)
    from qcc.interpreter import run_main

    got = run_main(qcc.import_model(model), [feeds[k] for k in feeds])
    ref = ort_run(model, feeds)
    for g, r in zip(got, ref):
        assert np.abs(r).max() > 0 and np.std(r) > 0  # not a constant output
        assert rel_err(g, r) <= TOL


def test_cli_binds_symbolic_dims_of_an_outside_model(tmp_path):
    """A real model with Paddle-style symbolic input dims runs through `qcc interpret`
    once --input-shape binds them, and matches onnxruntime."""
    rng = np.random.default_rng(2)
    model = _with_random_weights(onnx.load(light_models_dir() / "light_squeezenet.onnx"), rng)
    inits = {i.name for i in model.graph.initializer}
    x = next(i for i in model.graph.input if i.name not in inits)
    dims = x.type.tensor_type.shape.dim
    shape = [d.dim_value for d in dims]
    for d, sym in zip(dims, ["p2o.DynamicDimension.0", None, "?", "w"]):
        if sym:
            d.dim_param = sym
    for o in model.graph.output:
        o.type.tensor_type.ClearField("shape")
    path = tmp_path / "squeezenet_dyn.onnx"
    onnx.save(model, path)
    xs = rng.standard_normal((3, *shape[1:])).astype(np.float32)
    np.savez(tmp_path / "in.npz", **{x.name: xs})
    bind = f"{x.name}=1," + ",".join(str(d) for d in shape[1:])
    r = subprocess.run([sys.executable, "-m", "qcc.cli", "interpret", str(path), "--inputs", str(tmp_path / "in.npz"),
                        "--output", str(tmp_path / "out.npz"), "--input-shape", bind, "-q"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "out.npz") as z:
        (got,) = [z[k] for k in z.files]
    ref = np.concatenate([ort_run(model, {x.name: xs[i:i + 1]})[0] for i in range(3)])
    assert got.shape == ref.shape
    assert rel_err(got, ref) <= TOL
    # Without the binding the same file is refused with a one-line reason.
    r = subprocess.run([sys.executable, "-m", "qcc.cli", "interpret", str(path), "--inputs", str(tmp_path / "in.npz"),
                        "--output", str(tmp_path / "out2.npz")], capture_output=True, text=True)
    assert r.returncode == 2
    assert "is dynamic; bind it with --input-shape" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out2.npz").exists()


def test_external_data_files_are_loaded(tmp_path, digits_test):
    """Large exports keep weights next to the .onnx file (external data)."""
    model = onnx.load(MODELS / "lenet_digits.onnx")
    onnx.save_model(model, tmp_path / "lenet_ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location="lenet_ext.weights", size_threshold=1024)
    assert (tmp_path / "lenet_ext.weights").stat().st_size > 200_000
    assert (tmp_path / "lenet_ext.onnx").stat().st_size < 20_000
    xs = digits_test["input"][:16]
    got = qcc.interpret(tmp_path / "lenet_ext.onnx", {"input": xs})["logits"]
    assert rel_err(got, ort_run(MODELS / "lenet_digits.onnx", {"input": xs})[0]) <= TOL
    (tmp_path / "lenet_ext.weights").unlink()
    with pytest.raises(qcc.QccError, match="cannot load external tensor data"):
        qcc.import_model(tmp_path / "lenet_ext.onnx")
