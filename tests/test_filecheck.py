"""Runs the lit/FileCheck suite (tests/filecheck): one pytest case per .mlir file."""

import pathlib
import subprocess
import sys

import pytest

SUITE = pathlib.Path(__file__).parent / "filecheck"
FILES = sorted(p for p in SUITE.rglob("*.mlir") if "inputs" not in p.parts)


def test_suite_is_not_empty():
    assert len(FILES) >= 8


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(SUITE)) for p in FILES])
def test_filecheck(path):
    # lit has no __main__ module; run its entry point with this interpreter
    r = subprocess.run([sys.executable, "-c", "import sys, lit.main; sys.argv[0] = 'lit'; lit.main.main()",
                        "-v", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "Passed: 1" in r.stdout, r.stdout[-2000:]
