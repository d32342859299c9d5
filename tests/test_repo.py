"""The repository's promises to a newcomer: README commands, CI entry point, package layout."""

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    return re.findall(r"```sh\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)


def test_ci_runs_exactly_the_readme_test_command():
    test_cmd = readme_commands()[1].strip()
    assert "pytest" in test_cmd
    ci_lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_cmd in ci_lines


def test_readme_main_job_runs_on_the_bundled_model(tmp_path):
    main_cmd = readme_commands()[0].strip()
    install, run = main_cmd.split(" && ")
    assert install.startswith("python3 -m pip install")
    args = run.split()
    assert args[0] == "qcc"
    args = [str(ROOT / a) if a.startswith("models/") else a for a in args[1:]]
    out = tmp_path / "out"
    args[args.index("-o") + 1] = str(out)
    r = subprocess.run([sys.executable, "-m", "qcc.cli", *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    import json

    import numpy as np

    report = json.loads((out / "report.json").read_text())
    assert report["calibration"]["source"].endswith("digits_calib.npz")
    assert (out / "report.html").exists()
    with np.load(ROOT / "models" / "digits_test.npz") as t:
        np.savez(tmp_path / "in.npz", input=t["input"][:100])
        labels = t["label"][:100]
    r = subprocess.run([sys.executable, "-m", "qcc.cli", "interpret", str(out / "model.mlir"), "--inputs",
                        str(tmp_path / "in.npz"), "--output", str(tmp_path / "o.npz"), "-q"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "o.npz") as z:
        assert (z["logits"].argmax(1) == labels).mean() > 0.95


def test_package_maps_the_design_folders():
    import qcc
    import qcc.backends
    import qcc.dialects
    import qcc.passes

    assert pathlib.Path(qcc.__file__).parent.name == "compiler"
    assert pathlib.Path(qcc.dialects.__file__).parent.name == "dialects"
    assert pathlib.Path(qcc.passes.__file__).parent.name == "passes"
    assert pathlib.Path(qcc.backends.__file__).parent.name == "backends"
