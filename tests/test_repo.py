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
    out = tmp_path / "res.npz"
    args[args.index("--output") + 1] = str(out)
    r = subprocess.run([sys.executable, "-m", "qcc.cli", *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    import numpy as np

    with np.load(out) as z, np.load(ROOT / "models" / "digits_calib.npz") as c:
        assert z["logits"].shape == (len(c["input"]), 10)
        assert (z["logits"].argmax(1) == c["label"]).mean() > 0.95


def test_package_maps_the_design_folders():
    import qcc
    import qcc.backends
    import qcc.dialects
    import qcc.passes

    assert pathlib.Path(qcc.__file__).parent.name == "compiler"
    assert pathlib.Path(qcc.dialects.__file__).parent.name == "dialects"
    assert pathlib.Path(qcc.passes.__file__).parent.name == "passes"
    assert pathlib.Path(qcc.backends.__file__).parent.name == "backends"
