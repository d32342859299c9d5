"""qcc against the ONNX backend conformance suite (node, pytorch-converted,
pytorch-operator), one test per case; see tests/conformance/conformance.py.

Cases listed in tests/conformance/skips.txt are skipped with their reason.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "conformance"))
import conformance  # noqa: E402

CASES = conformance.collect_cases()
SKIPS = conformance.load_skips()


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_case(name: str) -> None:
    if name in SKIPS:
        pytest.skip(SKIPS[name])
    r = conformance.result_of(CASES[name], SKIPS)
    if r.status != "pass":
        pytest.fail(f"{r.exc_type}: {r.message}", pytrace=False)


def test_skip_file_names_existing_cases() -> None:
    unknown = sorted(set(SKIPS) - set(CASES))
    assert not unknown, f"skips.txt names cases that do not exist: {unknown}"
    assert all(reason.strip() for reason in SKIPS.values())


def test_node_suite_pass_rate() -> None:
    """passed / total over every collected node case (skips count as failures)."""
    rate = conformance.node_pass_rate()
    assert rate >= conformance.NODE_PASS_RATE, (
        f"node-suite pass rate {rate:.2%} < {conformance.NODE_PASS_RATE:.0%}"
    )
