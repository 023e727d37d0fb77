"""What a hostile or careless user found: one test per finding (issue "Hardening").

Each test drives sweep through its public surface (``sweep.run``, the ``sweep`` command,
``sweep.load_spec``, the worker wrapper) the way the user did, and checks the behaviour
the issue asks for: one row per trial whatever it does, nothing expanded inside values,
nothing left running, one clear line instead of a traceback, readers that never fail.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sweep
from sweep.cli import main
from sweep.core.errors import SpecError, SweepError
from sweep.worker.entry import run_batch
from sweep.worker.wrapper import Objective

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def doc(name, objective, parameters, stages, **extra):
    d = {"name": name, "objective": objective, "metric": {"name": "loss"},
         "parameters": parameters, "stages": stages}
    d.update(extra)
    return d


def batch(fn, configs, metric="loss", **objective):
    """Run configs as one batch through the worker wrapper (no Ray)."""
    obj = Objective(metric, target=fn, sweep="t", **objective)
    return run_batch(obj, [(f"t{i}", c, None) for i, c in enumerate(configs)]).records


# ------------------------------------------------------ 1-3: one row per trial


def raises_interrupts(config):
    if config["x"] == 3:
        raise KeyboardInterrupt
    if config["x"] == 5:
        raise SystemExit(4)
    return float(config["x"])


def test_keyboard_interrupt_and_system_exit_are_one_failed_row_each():
    records = batch(raises_interrupts, [{"x": i} for i in range(8)])
    assert [r.trial_id for r in records] == [f"t{i}" for i in range(8)]
    by_x = {i: r for i, r in enumerate(records)}
    assert by_x[3].status == "failed" and "KeyboardInterrupt" in by_x[3].error
    assert by_x[5].status == "failed" and "sys.exit(4)" in by_x[5].error
    assert "not retried" in by_x[5].error
    assert all(by_x[i].status == "ok" for i in (0, 1, 2, 4, 6, 7))


@pytest.mark.usefixtures("ray_session")
def test_interrupting_objectives_on_ray_lose_no_rows_and_are_not_retried(results):
    df = sweep.run(doc("interrupts", "tests.objectives:interrupts",
                       {"x": {"values": list(range(60))}}, [{"plan": "grid"}]),
                   results=results)
    assert len(df) == 60 and df["trial_id"].is_unique
    failed = df[df.status == "failed"].sort_values("params.x")
    assert list(failed["params.x"]) == [7, 41]
    assert (df["attempts"] == 1).all()
    again = sweep.run(doc("interrupts", "tests.objectives:interrupts",
                          {"x": {"values": list(range(60))}}, [{"plan": "grid"}]),
                      results=results)
    assert len(again) == 60  # a rerun finds every row (nothing "cancelled" to redo)


def test_one_bad_result_does_not_poison_its_batch():
    def objective(config):
        return 10**400 if config["x"] == 4 else float(config["x"])

    records = batch(objective, [{"x": i} for i in range(11)])
    assert [r.status for r in records].count("failed") == 1
    assert records[4].status == "failed" and "too large" in records[4].error


def test_a_nul_byte_in_one_command_value_fails_only_that_trial():
    obj = Objective("loss", command=[PY, "-c", "import json; print(json.dumps({'loss': 1}))",
                                     "${args}"], sweep="t")
    records = run_batch(obj, [("a", {"v": "ok"}, None), ("b", {"v": "x\x00y"}, None),
                              ("c", {"v": "fine"}, None)]).records
    assert [r.status for r in records] == ["ok", "failed", "ok"]
    assert "NUL" in records[1].error


ANY_RESULT = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(10**300, 10**500), st.floats(),
    st.text(max_size=5), st.lists(st.floats(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.one_of(st.floats(), st.text(max_size=3),
                                                   st.integers()), max_size=4),
    st.sampled_from(["raise", "interrupt", "exit", "generator_exit", "chdir", "env"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ANY_RESULT, min_size=1, max_size=8))
def test_every_trial_of_a_batch_ends_with_exactly_one_row(results_by_trial):
    def objective(config):
        value = results_by_trial[config["i"]]
        actions = {"raise": ValueError("boom"), "interrupt": KeyboardInterrupt(),
                   "exit": SystemExit(1), "generator_exit": GeneratorExit()}
        if isinstance(value, str) and value in actions:
            raise actions[value]
        if value == "chdir":
            os.chdir("/")
        if value == "env":
            os.environ["SWEEP_TEST_LEAK"] = "1"
        return value

    cwd = os.getcwd()
    records = batch(objective, [{"i": i} for i in range(len(results_by_trial))])
    assert [r.trial_id for r in records] == [f"t{i}" for i in range(len(results_by_trial))]
    assert all(r.status in ("ok", "failed") for r in records)
    assert os.getcwd() == cwd and "SWEEP_TEST_LEAK" not in os.environ


def test_the_metric_is_kept_whatever_its_place_and_dropped_extras_are_said():
    def many(config):
        out = {f"m{i:03d}": float(i) for i in range(300)}
        out["loss"] = 0.5
        return out

    (record,) = batch(many, [{}])
    assert record.status == "ok" and record.metrics["loss"] == 0.5
    assert len(record.metrics) == 201
    assert record.error.startswith("warning: 100 more numeric entries were dropped")


# ----------------------------------------------------------------- 4-5: readers


def stored_sweep(root: Path, name: str, params: dict, rows: list[dict]) -> Path:
    """A results folder written through the store (no Ray)."""
    from sweep.core.records import TrialRecord
    from sweep.engine.runner import open_writer

    spec = sweep.load_spec(doc(name, "m:f", params, [{"plan": "random", "trials": 4}]))
    store = open_writer(spec, str(root))
    store.folder.write_spec(spec.to_yaml())
    store.add([TrialRecord(sweep=spec.name, stage=0, trial_id=f"t{i}", status="ok",
                           params=r["params"], metrics=r["metrics"], started_at=1.7e9 + i,
                           finished_at=1.7e9 + i + 1, duration_s=1.0)
               for i, r in enumerate(rows)])
    store.flush()
    return Path(store.folder.dir)


def test_top_json_keeps_fields_apart_from_parameters_named_like_them(tmp_path, capsys):
    params = {"rank": {"values": [7, 8]}, "stage": {"values": [9]}, "trial_id": {"values": [1]},
              "loss": {"min": 0.0, "max": 1.0}}
    rows = [{"params": {"rank": 7 + i % 2, "stage": 9, "trial_id": 1, "loss": 0.5},
             "metrics": {"loss": 0.1 * (i + 1)}} for i in range(3)]
    folder = stored_sweep(tmp_path, "named", params, rows)
    assert main(["top", str(folder), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in records] == [1, 2, 3]
    assert [r["stage"] for r in records] == [0, 0, 0]
    assert records[0]["trial_id"] == "t0" and records[0]["metrics"]["loss"] == pytest.approx(0.1)
    assert records[0]["params"] == {"rank": 7, "stage": 9, "trial_id": 1, "loss": 0.5}
    assert main(["top", str(folder), "--format", "csv"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split(",")
    # Only the parameter whose bare name would read as a field keeps its prefix.
    assert header == ["rank", "stage", "trial_id", "loss", "params.rank"]


def test_status_reads_the_folder_given_not_the_name_inside(tmp_path, capsys):
    params = {"x": {"min": 0.0, "max": 1.0}}
    old = stored_sweep(tmp_path, "moved", params,
                       [{"params": {"x": 0.1}, "metrics": {"loss": 1.0}}] * 1)
    aside = old.with_name("moved.old-20260101-000000")
    old.rename(aside)
    stored_sweep(tmp_path, "moved", params, [{"params": {"x": 0.2}, "metrics": {"loss": 2.0}},
                                             {"params": {"x": 0.3}, "metrics": {"loss": 3.0}}])
    assert main(["status", str(aside)]) == 0
    assert "1 trials stored" in capsys.readouterr().out
    assert main(["status", str(tmp_path / "moved")]) == 0
    assert "2 trials stored" in capsys.readouterr().out


# ----------------------------------------------------------- 6: process state


def test_chdir_in_one_objective_never_reaches_the_next():
    start = os.getcwd()

    def objective(config):
        seen = os.getcwd()
        if config["x"] == 1:
            os.chdir("/tmp")
        return {"loss": float(seen == start)}

    records = batch(objective, [{"x": i} for i in range(12)])
    assert all(r.metrics["loss"] == 1.0 for r in records)
    assert os.getcwd() == start


# ---------------------------------------------------------------- 7-8: security


def test_macros_are_never_expanded_inside_parameter_values(monkeypatch, tmp_path):
    monkeypatch.setenv("SWEEP_TEST_SECRET", "hunter2")
    out = tmp_path / "argv.json"
    monkeypatch.setenv("ARGV_OUT", str(out))
    script = ("import json, os, sys; open(os.environ['ARGV_OUT'], 'w')"
              ".write(json.dumps(sys.argv[1:])); print(json.dumps({'loss': 0}))")
    value = "x ${envvar:SWEEP_TEST_SECRET} $(whoami)"
    for macro in ("${args}", "${args_json}", "${args_no_hyphens}", "${args_no_boolean_flags}",
                  "${args_no_equals}", "${args_append_hydra}", "${args_override_hydra}"):
        obj = Objective("loss", command=[PY, "-c", script, macro], sweep="t")
        (record,) = run_batch(obj, [("a", {"v": value}, None)]).records
        assert record.status == "ok", record.error
        argv = " ".join(json.loads(out.read_text()))
        assert "hunter2" not in argv and value in argv, (macro, argv)


def test_an_unset_envvar_is_an_error_naming_it(monkeypatch):
    monkeypatch.delenv("SWEEP_TEST_UNSET", raising=False)
    obj = Objective("loss", command=[PY, "-c", "print(1)", "--key=${envvar:SWEEP_TEST_UNSET}"],
                    sweep="t")
    (record,) = run_batch(obj, [("a", {}, None)]).records
    assert record.status == "failed" and "SWEEP_TEST_UNSET is not set" in record.error


def test_an_unknown_macro_is_refused_when_the_file_is_read():
    with pytest.raises(SpecError) as info:
        sweep.load_spec({"name": "m", "program": "train.py", "metric": "loss",
                         "command": ["${interpreter}", "${program}", "${args_no_hypens}"],
                         "parameters": {"x": {"values": [1]}}, "method": "grid"})
    assert "unknown macro ${args_no_hypens}" in str(info.value)


BOMB = "name: bomb\nobjective: m:f\nmetric: loss\nmethod: grid\nparameters: {x: {value: 1}}\n" + \
    "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else '"lol"'] * 9) + "]\n"
            for i in range(9))


def test_alias_bombs_are_refused_at_once_by_every_reader(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    start = time.perf_counter()
    assert main(["validate", str(path)]) == 2
    print(f"refused in {time.perf_counter() - start:.3f} s")
    err = capsys.readouterr().err
    assert "aliases" in err and len(err.strip().splitlines()) == 1
    # A stored spec.yaml is read with the same limits.
    folder = tmp_path / "results" / "bomb"
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text(BOMB)
    for command in ("status", "top"):
        assert main([command, str(folder)]) == 2
        assert "aliases" in capsys.readouterr().err


# ------------------------------------------------------------- 9-10: processes


def test_a_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    inner = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); " \
            "time.sleep(60)"
    obj = Objective("loss", command=["sh", "-c", f'"{PY}" -c "{inner}"'], sweep="t",
                    timeout_s=1.0)
    (record,) = run_batch(obj, [("a", {}, None)]).records
    assert record.status == "timeout"
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid), "the timed-out program's child still runs"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead; only its parent (gone) would reap it.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "zombie" in status.read_text())


def test_a_background_child_holding_stdout_does_not_hold_the_trial():
    script = textwrap.dedent("""
        import json, subprocess, sys
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(json.dumps({"loss": 0.25}))
    """)
    obj = Objective("loss", command=[PY, "-c", script], sweep="t", timeout_s=30)
    (record,) = run_batch(obj, [("a", {}, None)]).records
    assert record.status == "ok" and record.metrics["loss"] == 0.25
    assert record.duration_s < 30  # ended with its program, not with the child


# -------------------------------------------------------- 11-14: clear errors


@pytest.mark.parametrize("text,expected", [
    ("name: deep\nobjective: m:f\nmetric: loss\nmethod: grid\nparameters:\n  x: {value: "
     + "[" * 400 + "]" * 400 + "}\n", "nested"),
    ('name: s\nobjective: m:f\nmetric: loss\nmethod: grid\nparameters:\n'
     '  x: {values: ["\\ud800"]}\n', "UTF-8"),
    ("name: 123\nobjective: m:f\nmethod: grid\nparameters: {x: {value: 1}}\n", "quote it"),
    # Issue 25 item 19: validated, then an OverflowError in run (random and bayes).
    ("name: huge\nobjective: m:f\nmetric: loss\nmethod: bayes\nparameters:\n  seed: "
     "{distribution: int_uniform, min: -4611686018427387904, max: 4611686018427387904}\n",
     "parameters.seed.max: got 4611686018427387904, expected an integer less than min + "
     "2**50"),
])
def test_what_validate_refuses_is_one_line_and_what_it_accepts_runs(tmp_path, capsys, text,
                                                                      expected):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_local_state_problems_are_one_line_exit_2(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(doc("state", "tests.objectives:trivial",
                                       {"x": {"values": [1, 2]}}, [{"plan": "grid"}])))
    results = tmp_path / "results"
    (results / "state").mkdir(parents=True)
    (results / "state" / "trials").write_text("not a folder")
    assert main(["run", str(spec), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exit_info:
        main(["plan", str(spec), "--limit", "-1"])
    assert exit_info.value.code == 2 and "--limit" in capsys.readouterr().err
    folder = stored_sweep(tmp_path / "r2", "rep", {"x": {"min": 0.0, "max": 1.0}},
                          [{"params": {"x": 0.5}, "metrics": {"loss": 1.0}}])
    assert main(["report", str(folder), "-o", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    (folder / "lock.json").write_text('{"pid": "abc"}')
    assert main(["status", str(folder)]) == 0
    assert "its pid is 'abc'" in capsys.readouterr().out


def test_a_corrupt_part_file_is_named_and_everything_else_works(tmp_path, capsys):
    folder = stored_sweep(tmp_path, "corrupt", {"x": {"min": 0.0, "max": 1.0}},
                          [{"params": {"x": 0.1 * i}, "metrics": {"loss": i}}
                           for i in range(4)])
    bad = folder / "trials" / "stage=0" / "part-00000000T000000-deadbeef.parquet"
    bad.write_bytes(b"garbage")
    for command in (["status"], ["top"], ["top", "--format", "json"]):
        assert main([*command, str(folder)]) == 0
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
    assert main(["status", str(folder)]) == 0
    captured = capsys.readouterr()
    assert "4 trials stored" in captured.out and bad.name in captured.err


@pytest.mark.usefixtures("ray_session")
def test_a_part_file_with_damaged_pages_is_named_and_status_top_report_run_go_on(
        tmp_path, capsys):
    # Issue 25, item 11: the file's footer reads, its pages do not.
    from tests.test_store import damage_pages

    spec = tmp_path / "pages.yaml"
    spec.write_text(yaml.safe_dump(doc("pages", "tests.objectives:quadratic",
                                       {"lr": {"min": 0.001, "max": 1.0}},
                                       [{"plan": "random", "trials": 5, "seed": 3}])))
    results = tmp_path / "results"
    assert main(["run", str(spec), "--results", str(results), "--quiet"]) == 0
    (part,) = (results / "pages" / "trials").rglob("part-*.parquet")
    damage_pages(str(part))
    capsys.readouterr()
    folder = str(results / "pages")
    for command in (["status"], ["top"], ["top", "--format", "json"],
                    ["report", "-o", str(tmp_path / "r.html")]):
        assert main([*command, folder]) == 0, command
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err and part.name in captured.err, command
    # The run goes on: the damaged file's trials run again, the file is named.
    assert main(["run", str(spec), "--results", str(results), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert part.name in captured.err and "Traceback" not in captured.err
    assert main(["status", folder]) == 0
    assert "5 trials stored" in capsys.readouterr().out


def test_status_top_report_take_the_free_text_name(tmp_path, capsys, monkeypatch):
    # Weak item of issue 25: a sweep named "First Sweep" lives in results/First-Sweep-<h>;
    # status did not take the name itself.
    folder = stored_sweep(tmp_path / "results", "First Sweep", {"x": {"min": 0.0, "max": 1.0}},
                          [{"params": {"x": 0.5}, "metrics": {"loss": 1.0}}])
    assert folder.name.startswith("First-Sweep-")
    monkeypatch.chdir(tmp_path)
    for command in (["status"], ["top"]):
        assert main([*command, "First Sweep"]) == 0, capsys.readouterr()
    assert "sweep 'First Sweep'" in capsys.readouterr().out
    assert main(["status", str(tmp_path / "results" / "First Sweep")]) == 0


def test_fresh_names_the_sweep_it_moves_aside(tmp_path, caplog):
    # Weak item of issue 25: on a folder-name collision --fresh moved another sweep's
    # results and said it moved this sweep's.
    from sweep.engine.runner import prepare_writer

    spec = sweep.load_spec(doc("Mine!", "m:f", {"x": {"min": 0.0, "max": 1.0}},
                               [{"plan": "random", "trials": 2}]))
    other = sweep.load_spec(doc("Theirs", "m:f", {"x": {"min": 0.0, "max": 1.0}},
                                [{"plan": "random", "trials": 2}]))
    target = tmp_path / spec.folder
    target.mkdir()
    (target / "spec.yaml").write_text(other.to_yaml())  # as if their names collided
    with pytest.raises(SweepError, match="different sweep: name: was 'Theirs'"):
        prepare_writer(spec, str(tmp_path), fresh=False)
    with caplog.at_level("WARNING", logger="sweep"):
        writer = prepare_writer(spec, str(tmp_path), fresh=True)
    writer.folder.lock.release()
    moved = [r.getMessage() for r in caplog.records if "moved" in r.getMessage()]
    assert moved and "sweep 'Theirs'" in moved[0] and spec.folder in moved[0], moved


# ------------------------------------------------------------------ usability


@pytest.mark.usefixtures("ray_session")
def test_resume_after_an_edit_that_keeps_the_stored_trials(results):
    base = doc("edit", "tests.objectives:quadratic",
               {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0}},
               [{"plan": "random", "trials": 6, "seed": 1}])
    first = sweep.run(base, results=results)
    more = dict(base, stages=[{"plan": "random", "trials": 9, "seed": 1},
                              {"plan": "refine", "trials": 4}])
    second = sweep.run(more, results=results)
    assert len(second) == 13
    kept = second.set_index("trial_id").loc[first.trial_id, "finished_at"]
    assert list(kept) == list(first.set_index("trial_id")["finished_at"])  # not rerun
    changed = dict(more, parameters={"lr": {"distribution": "log_uniform_values",
                                            "min": 1e-3, "max": 1.0}})
    with pytest.raises(SweepError) as info:
        sweep.run(changed, results=results)
    assert "parameters.lr.min: was 0.0001, now 0.001" in str(info.value)
    same = dict(more, stages=[{"plan": "random", "trials": 9.0, "seed": 1},
                              {"plan": "refine", "trials": 4}])
    assert len(sweep.run(same, results=results)) == 13  # 9.0 is 9


def test_warnings_come_after_the_error_that_refuses_a_file(tmp_path, capsys):
    path = tmp_path / "w.yaml"
    path.write_text("name: w\nmethod: random\nmetric: loss\nparameters:\n"
                    "  lr: {distribution: log_uniform, min: -9, max: -1}\n"
                    "  opt: {distribution: categorcal, values: [a]}\n")
    assert main(["validate", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("sweep: error: parameters.opt.distribution")
    assert all(line.startswith("sweep: warning:") for line in lines[1:])


def test_json_report_lines_of_a_command_job_are_reports_and_the_last_is_the_result():
    script = textwrap.dedent("""
        import json
        for epoch in range(3):
            print(json.dumps({"epoch": epoch, "loss": 1.0 / (epoch + 1)}))
        print(json.dumps({"loss": 0.2, "acc": 0.9}))
    """)
    obj = Objective("loss", command=[PY, "-c", script], sweep="t")
    result = run_batch(obj, [("a", {}, None)])
    (record,) = result.records
    assert record.status == "ok" and record.metrics == {"loss": 0.2, "acc": 0.9}
    assert [r.step for r in result.reports] == [0, 1, 2] and record.step == 2


def test_sweep_report_is_a_no_op_outside_a_sweep():
    assert sweep.report(step=1, loss=0.5) is None


def test_a_batch_whose_raylet_died_starts_no_further_trial(monkeypatch):
    """A worker whose node's raylet (its parent process) died goes on running Python until
    it is killed: it must not record the start of another trial of its batch, or the
    driver charges an attempt to a trial whose objective never ran (the node-killing
    test saw this when the worker died between the mark and the objective)."""
    import sweep.worker.entry as trial_module

    ran: list[str] = []
    marked: list[str] = []

    def objective(config):
        ran.append(config["name"])
        if config["name"] == "a":  # the raylet dies while the first trial runs
            parents.append(1)
        return 0.0

    parents = [4242]
    monkeypatch.setattr(trial_module.os, "getppid", lambda: parents[-1])
    monkeypatch.setattr(trial_module, "mark_started", marked.append)
    obj = Objective("loss", target=objective)
    trials = [(n, {"name": n}, None) for n in "abc"]
    records = run_batch(obj, trials, marks="m").records
    assert ran == ["a"] and marked == ["m:0"] and [r.trial_id for r in records] == ["a"]
    # Without start marks no start is recorded, so nothing is charged wrongly: all run.
    parents[:] = [4242]
    ran.clear()
    assert len(run_batch(obj, trials).records) == 3 and ran == ["a", "b", "c"]


# ------------------------------------------- round 2 (issue 25): reports from a trial


def test_a_step_beyond_int64_fails_that_report_and_only_that_trial():
    """Issue 25, item 10: sweep.report(step=2**63+5) made every flush of the store fail;
    the report's entry refuses it, naming the range, and its batch-mates are untouched."""
    def reports(config):
        sweep.report(step=config["step"], loss=1.0)
        return 0.5

    result = run_batch(Objective("loss", target=reports, sweep="t"),
                       [("big", {"step": 2**63 + 5}, None), ("ok", {"step": 7}, None),
                        ("low", {"step": -(2**63) - 1}, None)])
    big, ok, low = result.records
    assert big.status == low.status == "failed" and ok.status == "ok"
    assert "64-bit range" in big.error and "2**63-1" in big.error
    assert "64-bit range" in low.error
    assert [(r.trial_id, r.step) for r in result.reports] == [("ok", 7)]


def test_one_rule_for_steps_from_python_and_from_command_lines():
    """Issue 25: step=True was accepted from Python but refused in a command's JSON line,
    and a line's {"step": 1e20} was taken as a report: one rule (check_step) for both, a
    refused line said in the trial's error column rather than dropped silently."""
    def bool_step(config):
        sweep.report(step=True, loss=1.0)
        return 0.5

    (record,) = batch(bool_step, [{}])
    assert record.status == "failed" and "a bool is not a step" in record.error

    script = textwrap.dedent("""
        import json
        print(json.dumps({"step": True, "loss": 9.0}))
        print(json.dumps({"step": 1e20, "loss": 8.0}))
        print(json.dumps({"step": 1, "loss": 0.5}))
        print(json.dumps({"loss": 0.5}))
    """)
    result = run_batch(Objective("loss", command=[PY, "-c", script], sweep="t"),
                       [("c", {}, None)])
    (record,) = result.records
    assert record.status == "ok" and [r.step for r in result.reports] == [1]
    assert record.error.startswith("warning: 2 JSON line(s) with a step key were not taken")
    assert "a bool is not a step" in record.error  # the first refused line, and why


def test_the_store_encoder_never_lets_one_bad_step_break_a_flush():
    """Issue 25, item 10, the store's side: a step outside int64 (from a journal an older
    version wrote) made every flush raise OverflowError; the encoder leaves that curve
    row out and writes a null step for a trial row, and every other row is written."""
    from sweep.core.records import Report, TrialRecord
    from sweep.store.codec import Codec, curves_schema, curves_table, trials_schema, trials_table

    rows = [("s", Report("a", 2**63 + 5, {"loss": 1.0}, 1.0), 1),
            ("s", Report("a", 3, {"loss": 0.5}, 2.0), 2),
            ("s", Report("a", -(2**63) - 1, {"loss": 0.1}, 3.0), 3)]
    table = curves_table(rows, curves_schema(["loss"]))
    assert table.column("step").to_pylist() == [3]
    assert table.column("metrics.loss").to_pylist() == [0.5]
    assert table.column("seq").to_pylist() == [2]

    records = [TrialRecord("s", 0, "a", None, "ok", {}, {"loss": 1.0}, step=2**64),
               TrialRecord("s", 0, "b", None, "ok", {}, {"loss": 2.0}, step=4)]
    table = trials_table(records, Codec({}), trials_schema({}, ["loss"]))
    assert table.column("step").to_pylist() == [None, 4]
    assert table.column("trial_id").to_pylist() == ["a", "b"]


def test_a_wide_report_keeps_the_metric_and_says_what_it_dropped():
    """Issue 25, item 16: a report of more than 200 metrics dropped the sweep's metric
    when it came after them (so early stopping never triggered), silently."""
    def wide(config):
        metrics = {f"m{i:03d}": float(i) for i in range(300)}
        metrics["loss"] = 0.25  # last
        sweep.report(step=0, **metrics)
        return 0.25

    result = run_batch(Objective("loss", target=wide, sweep="t"), [("w", {}, None)])
    (record,) = result.records
    (report,) = result.reports
    assert report.metrics["loss"] == 0.25 and len(report.metrics) == 201
    assert record.status == "ok"
    assert ("warning: 1 report(s) had more than 200 extra metrics: 100 values were dropped "
            "(the metric 'loss' is always kept)") in record.error


def test_reports_from_a_thread_an_earlier_trial_left_running_are_not_the_next_trials():
    """Issue 25, item 15: a thread that outlives its objective kept reporting, and its
    reports landed on the worker's next trials. A report belongs to the trial that made
    it: the stray thread's reports during the next trial are dropped and said, while a
    thread that trial starts itself reports for it."""
    import threading

    calls = [0]
    stop = threading.Event()

    def stray() -> None:
        step = 100
        while not stop.is_set():
            sweep.report(step=step, stray=1.0)
            calls[0] += 1
            step += 1
            time.sleep(0.001)

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 60
        while calls[0] < count and time.monotonic() < deadline:
            time.sleep(0.001)
        assert calls[0] >= count, "the stray thread does not report"

    def objective(config):
        if config["name"] == "a":
            threading.Thread(target=stray, daemon=True).start()
            wait_for(1)  # it reported while its own trial ran
            return 0.0
        wait_for(calls[0] + 5)  # and keeps reporting during this one
        own = threading.Thread(target=lambda: sweep.report(step=1, loss=0.5))
        own.start()
        own.join()
        sweep.report(step=2, loss=0.25)
        return 0.25

    try:
        result = run_batch(Objective("loss", target=objective, sweep="t"),
                           [("a", {"name": "a"}, None), ("b", {"name": "b"}, None)])
    finally:
        stop.set()
    a, b = result.records
    assert a.status == "ok"
    assert {r.trial_id for r in result.reports if "stray" in r.metrics} == {"a"}
    assert [(r.step, r.metrics) for r in result.reports if r.trial_id == "b"] == [
        (1, {"loss": 0.5}), (2, {"loss": 0.25})]
    assert b.status == "ok" and b.step == 2
    assert "from a thread that an earlier trial left running were dropped" in b.error


class _HubThatHangsInAFork:
    """A report hub client like Ray's in a forked child: a push from a process other than
    the one that made it never returns."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.pushed: list[int] = []

    def push(self, report) -> bool:
        if os.getpid() != self.pid:
            import threading

            threading.Event().wait()
        self.pushed.append(report.step)
        return False


def _report_from_a_forked_child(config):
    import multiprocessing

    sweep.report(step=0, loss=1.0)
    child = multiprocessing.get_context("fork").Process(
        target=sweep.report, kwargs={"step": 1, "loss": 0.5})
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        child.join()
        return {"loss": 0.5, "child_hung": 1.0}
    return {"loss": 0.5, "child_exit": float(child.exitcode)}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_reporting_neither_hangs_nor_vanishes_silently(capfd):
    """Issue 25, item 14: a forked multiprocessing child calling sweep.report hung the
    sweep when it had a stopping rule (Ray's hub client does not survive a fork), and
    vanished silently without one. The child's report is dropped with a warning that
    says why; the trial's own reports go on."""
    hub = _HubThatHangsInAFork()
    obj = Objective("loss", target=_report_from_a_forked_child, sweep="t", hub=hub)
    (record,) = run_batch(obj, [("f", {}, None)]).records
    assert record.status == "ok", record.error
    assert record.metrics.get("child_exit") == 0.0, record.metrics
    assert hub.pushed == [0]
    err = capfd.readouterr().err
    assert "sweep: warning: sweep.report was called in process" in err
    assert "a child forked from the process running trial f" in err

    capfd.readouterr()
    (record,) = batch(_report_from_a_forked_child, [{}])  # no rule: no hub
    assert record.metrics.get("child_exit") == 0.0
    assert "a child forked from the process running trial t0" in capfd.readouterr().err


def test_a_result_line_over_the_line_limit_names_the_limit():
    """Issue 25 (weak): a 1.5 MB result line failed the trial without naming the limit."""
    script = textwrap.dedent("""
        import json
        print(json.dumps({"loss": 0.5, "blob": "x" * 1_500_000}))
    """)
    (record,) = run_batch(Objective("loss", command=[PY, "-c", script], sweep="t"),
                          [("c", {}, None)]).records
    assert record.status == "failed"
    assert "1 stdout line(s) were longer than the 1,048,576 bytes a line may have" in \
        record.error
