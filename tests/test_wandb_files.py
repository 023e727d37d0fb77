"""sweep against W&B's own engine on the W&B sweep files of tests/data/wandb/.

W&B's engine (the PyPI package ``sweeps``) runs once per module in its own venv
(tests/oracle_env.py). For every file, sweep and W&B must agree (both load it, or both
refuse it) or differ only in a way listed in tests/wandb_compare.KNOWN, every grid both
accept must be W&B's exactly (points, order, Python types), and the outcome must be the
one tests/data/wandb/expected.json records for the file. Without the oracle the tests
fail: they exist to compare with W&B.
"""

from __future__ import annotations

import copy
import json
from typing import TypeVar

import pytest

from tests import oracle_env
from tests.wandb_compare import KNOWN, Verdict, compare

FOLDER = oracle_env.CORPUS
FILES = oracle_env.corpus_files(FOLDER)
EXPECTED = json.loads((FOLDER / "expected.json").read_text())
T = TypeVar("T")


@pytest.fixture(scope="module")
def oracle() -> dict[str, dict] | str:
    """W&B's verdict on every file of the folder, by file name; or, when W&B's engine
    cannot be had, why (each test then fails with it: a skip would hide it)."""
    try:
        results = oracle_env.run_oracle(FILES)
    except oracle_env.OracleUnavailable as exc:
        return f"W&B's engine is unavailable, so sweep cannot be compared with it: {exc}"
    return {path.name: result for path, result in zip(FILES, results)}


@pytest.fixture(scope="module")
def verdicts(oracle) -> dict[str, Verdict] | str:
    if isinstance(oracle, str):
        return oracle
    return {path.name: compare(path, oracle[path.name]) for path in FILES}


def available(found: T | str) -> T:
    """The oracle's answers, or the test fails saying why there are none."""
    if isinstance(found, str):
        pytest.fail(found, pytrace=False)
    return found


@pytest.mark.parametrize("name", [path.name for path in FILES])
def test_sweep_reads_the_file_as_wandb_does(name, verdicts):
    verdict = available(verdicts)[name]
    assert verdict.ok, verdict.describe()


@pytest.mark.parametrize("name", [path.name for path in FILES])
def test_outcome_is_the_one_expected(name, verdicts):
    verdict = available(verdicts)[name]
    expected = EXPECTED.get(name)
    assert expected is not None, f"{name}: add it to {FOLDER.name}/expected.json"
    got = {"sweep": verdict.sweep, "wandb": verdict.wandb, "known": sorted(verdict.known)}
    if verdict.sweep_error_path:
        got["sweep_path"] = verdict.sweep_error_path
    want = dict(expected, known=sorted(expected["known"]))
    assert got == want, verdict.describe()


def test_every_file_is_expected_and_every_known_difference_is_shown():
    assert sorted(EXPECTED) == [path.name for path in FILES]
    shown = {kind for entry in EXPECTED.values() for kind in entry["known"]}
    assert shown == set(KNOWN), f"no file shows {sorted(set(KNOWN) - shown)}"


def test_oracle_json_is_current(oracle):
    """The committed oracle.json is what W&B's engine says now (regenerate it with
    ``python tests/oracle_env.py``)."""
    oracle = available(oracle)
    stored = oracle_env.load_reference(FOLDER)["files"]
    assert sorted(stored) == [path.name for path in FILES]
    stale = [path.name for path in FILES
             if stored[path.name] != oracle_env.reference_entry(path, oracle[path.name])]
    assert not stale, f"oracle.json is stale for {stale}: run python tests/oracle_env.py"


# The comparison itself: differences outside KNOWN are caught (W&B's answers are taken
# from oracle.json and altered; no oracle needed).


def _stored(name: str) -> dict:
    return copy.deepcopy(oracle_env.load_reference(FOLDER)["files"][name])


def test_a_grid_value_of_another_type_is_unexpected():
    result = _stored("grid.yaml")
    column = result["grid_table"]["columns"].index("batch_size")
    result["grid_table"]["rows"][0][column] = float(result["grid_table"]["rows"][0][column])
    verdict = compare(FOLDER / "grid.yaml", result)
    assert verdict.unexpected and verdict.grid_equal is False
    assert "point 0 differs" in verdict.reason


def test_a_grid_in_another_order_is_unexpected():
    result = _stored("grid_duplicate_values.yaml")
    rows = result["grid_table"]["rows"]
    rows[0], rows[1] = rows[1], rows[0]
    assert compare(FOLDER / "grid_duplicate_values.yaml", result).unexpected


def test_an_unexplained_refusal_is_unexpected():
    result = _stored("bayes_runcap_nested.yaml")
    result["violations"] = ["Additional properties are not allowed ('count', 'run_cap' were "
                            "unexpected)"]
    verdict = compare(FOLDER / "bayes_runcap_nested.yaml", result)
    assert verdict.unexpected and "count" in verdict.reason


def test_wandb_refusing_what_sweep_refuses_for_a_known_reason_still_agrees():
    result = _stored("grid_unknown_macro.yaml")
    result.update(valid=False, violations=["'x' is not of type 'object'"])
    verdict = compare(FOLDER / "grid_unknown_macro.yaml", result)
    assert verdict.agree and verdict.ok and not verdict.known
