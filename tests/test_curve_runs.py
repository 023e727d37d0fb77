"""sweep.store.curve_runs: a trial's curve as its last run left it."""

from __future__ import annotations

import pandas as pd

from sweep.store.curve_runs import last_runs


def frame(trial_steps, seqs=None, times=None):
    ids = [t for t, _ in trial_steps]
    steps = [s for _, s in trial_steps]
    n = len(steps)
    return pd.DataFrame({"trial_id": ids, "step": steps,
                         "seq": list(range(n)) if seqs is None else seqs,
                         "time": list(range(n)) if times is None else times,
                         "metrics.loss": [float(i) for i in range(n)]})


def kept(df):
    out = last_runs(df).sort_values(["trial_id", "step"], kind="stable")
    return list(zip(out["trial_id"], out["step"], out["metrics.loss"], strict=True))


def test_a_trial_that_ran_once_is_returned_as_it_is():
    df = frame([("a", 0), ("b", 0), ("a", 1), ("b", 1)])
    assert last_runs(df) is df
    assert last_runs(df.iloc[0:0]).empty


def test_a_run_from_step_zero_replaces_the_earlier_run():
    df = frame([("a", 0), ("a", 1), ("a", 2), ("b", 0), ("a", 0), ("a", 1)])
    assert kept(df) == [("a", 0, 4.0), ("a", 1, 5.0), ("b", 0, 3.0)]


def test_a_run_from_a_middle_step_keeps_the_earlier_steps_below_it():
    df = frame([("a", 0), ("a", 1), ("a", 2), ("a", 3), ("a", 2), ("a", 3), ("a", 4)])
    assert kept(df) == [("a", 0, 0.0), ("a", 1, 1.0), ("a", 2, 4.0), ("a", 3, 5.0),
                        ("a", 4, 6.0)]


def test_a_repeated_last_step_and_a_filled_gap_are_not_new_runs():
    # step 3 twice in a row (one run repeating itself); step 1 arriving late (a gap
    # filled by a restored attempt): both kept, nothing dropped.
    df = frame([("a", 0), ("a", 2), ("a", 3), ("a", 3), ("a", 1)])
    assert sorted(kept(df)) == sorted([("a", 0, 0.0), ("a", 1, 4.0), ("a", 2, 1.0),
                                       ("a", 3, 2.0), ("a", 3, 3.0)])


def test_arrival_order_is_seq_and_rows_without_one_come_first_by_time():
    # Stored out of order: seq says the run of steps 0-1 at seq 5-6 came last.
    df = frame([("a", 0), ("a", 1), ("a", 0), ("a", 1), ("a", 2)],
               seqs=[5, 6, 1, 2, 3])
    assert kept(df) == [("a", 0, 0.0), ("a", 1, 1.0)]
    old = frame([("a", 0), ("a", 1), ("a", 0)], seqs=[None, None, 0], times=[20, 30, 0])
    assert kept(old) == [("a", 0, 2.0)]  # the rows without seq came first


# ------------------------------------------------ the driver's gate: each step stored once


def test_the_gate_drops_a_restored_resend_of_steps_stored_before_the_first_checkpoint():
    from sweep.core.records import Report
    from sweep.engine.curve_gate import CurveGate

    gate = CurveGate()
    _, now = gate.admit([Report("t", 0, {}), Report("t", 1, {}, checkpoint=True),
                         Report("t", 2, {})])
    assert [r.step for r in now] == [0, 1]  # 0 as it came, 1 with its checkpoint
    gate.drop("t")  # the attempt dies; the next restores step 1 and sends 0-1 again
    _, now = gate.admit([Report("t", 0, {}), Report("t", 1, {}, checkpoint=True),
                         Report("t", 2, {}), Report("t", 3, {}, checkpoint=True)])
    assert [r.step for r in now] == [2, 3]
    assert gate.end("t", 3) == []
