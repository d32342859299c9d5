"""Shared fixtures: paths of the bundled models and data, onnxruntime as the float peer."""

import os
import pathlib

# Tests run two pytest workers on two cores: a multi-threaded BLAS in each would
# oversubscribe the machine and spin (one small GEMM measured 40 ms instead of
# 0.06 ms). Set before numpy loads its BLAS.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
DIGIT_MODELS = ("mbv3_digits", "resnet_digits", "lenet_digits")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def light_models_dir() -> pathlib.Path:
    import onnx

    return pathlib.Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def ort_run(model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """onnxruntime on one thread: the float peer, used only as a reference in tests."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    src = model if isinstance(model, (str, os.PathLike)) else model.SerializeToString()
    sess = ort.InferenceSession(os.fspath(src) if isinstance(src, os.PathLike) else src, so,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| / max |ref|: the whole-model agreement measure of the issues."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))


def load_split(path) -> tuple[np.ndarray, np.ndarray]:
    """(model inputs, labels) of a data split: float32 `input`, or 8-bit `pixels` with
    x = pixels / 255 - mean computed in float32 (as tools/train_mbv3_small.py made them)."""
    with np.load(path) as z:
        if "input" in z.files:
            return z["input"], z["label"]
        mean = np.float32(z["mean"])
        return (z["pixels"].astype(np.float32) / np.float32(255.0) - mean).astype(np.float32), z["label"]


@pytest.fixture(scope="session")
def digits_test():
    with np.load(MODELS / "digits_test.npz") as z:
        return {k: z[k] for k in z.files}
