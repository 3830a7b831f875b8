"""Every bad input of tests/bad_inputs.py answers in one line, exits non-zero, leaves nothing
half-written and destroys no earlier work (issue 14's table, as a test); every unusual input that
must work (issue 32's) works."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .bad_inputs import cases, prepare, run_case
from .conftest import made_once

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def work(tmp_path_factory) -> Path:
    """The prepared fixtures, made once per session; the cases run in a copy of them."""
    master = made_once(tmp_path_factory, "bad-inputs", lambda folder: prepare(ROOT, folder))
    folder = tmp_path_factory.mktemp("bad-inputs") / "work"
    shutil.copytree(master, folder, symlinks=True)
    return folder


# one worker runs the cases: the other does not sit waiting for the fixtures (~90 s) meanwhile
@pytest.mark.xdist_group("bad_inputs")
@pytest.mark.parametrize("case", cases(), ids=lambda c: c.name.replace(" ", "_"))
def test_bad_input_is_refused_in_one_line(work, case):
    outcome = run_case(ROOT, work, case)
    if case.succeeds:  # an unusual input that must work
        assert outcome.code == 0 and not outcome.traceback, outcome.message
        assert not outcome.missing and not outcome.left, (outcome.missing, outcome.left)
        assert case.says.lower() in outcome.message.lower(), outcome.message
        return
    assert outcome.code != 0, f"exit 0: {outcome.message}"
    assert not outcome.traceback, outcome.message
    assert 0 < outcome.lines <= 2, f"{outcome.lines} error lines, last: {outcome.message}"
    assert not outcome.left, f"left behind: {outcome.left}"
    assert not outcome.changed, f"earlier work changed: {outcome.changed}"
    assert case.says.lower() in outcome.message.lower(), outcome.message
