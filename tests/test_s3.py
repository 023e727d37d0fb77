"""Shared storage: results on S3 through pyarrow's S3 filesystem, end to end.

An S3-compatible server (moto, tests/s3_server.py) runs on 127.0.0.1 in a process of
its own; credentials come from the environment, the endpoint from the URI's query
(``s3://bucket/prefix?endpoint_override=127.0.0.1:PORT&scheme=http``), as a user of an
S3-compatible store would write it. The sweep runs on the session Ray; only the driver
touches S3.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pyarrow.fs as pafs
import pytest
import yaml

from sweep import cli
from sweep.store.folder import ResultsFolder
from sweep.store.reader import ResultsReader
from sweep.store.writer import ResultsWriter
from tests.procs import REPO, free_port, kill_marked, sweep_cli, wait_port

pytestmark = pytest.mark.usefixtures("ray_session")

BUCKET = "sweep-results"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing-key",
    "AWS_SECRET_ACCESS_KEY": "testing-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Anything that would point the SDK elsewhere than the URI says.
UNSET = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN",
         "AWS_REGION")


@pytest.fixture(scope="module")
def s3():
    """The server, a bucket, and the credentials in this process's environment (restored
    at the end). Yields {"port", "query", "env", "roots"}; the driver's journal folders of
    the results roots listed in "roots" are removed at the end."""
    saved = {k: os.environ.get(k) for k in (*CREDENTIALS, *UNSET)}
    os.environ.update(CREDENTIALS)
    for key in UNSET:
        os.environ.pop(key, None)
    env = dict(os.environ)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.s3_server", str(port)], cwd=REPO,
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        wait_port(port)
        import boto3

        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}").create_bucket(Bucket=BUCKET)
        info = {"port": port, "query": f"endpoint_override=127.0.0.1:{port}&scheme=http",
                "env": env, "roots": []}
        yield info
        # The driver's journal folders of these results roots (on this machine's disk).
        for root, name in info["roots"]:
            journal = ResultsFolder(root, name).journal_dir
            for folder in glob.glob(glob.escape(journal)) + glob.glob(
                    glob.escape(journal) + ".old-*"):
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            kill_marked("", roots=[proc.pid])
            proc.wait(timeout=10)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def uri(s3, path=""):
    """s3://BUCKET/<path>?endpoint_override=...&scheme=http"""
    return f"s3://{BUCKET}/{path}?{s3['query']}"


def results_root(s3, path, name):
    """The URI of a results root, remembered so its journal folder is removed at the end."""
    root = uri(s3, path)
    s3["roots"].append((root, name))
    return root


def keys(s3, prefix):
    import boto3

    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3['port']}")
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def read_trials(s3, path):
    """The whole table as pandas reads it, through pyarrow's S3 filesystem."""
    fs, base = pafs.FileSystem.from_uri(uri(s3, path))
    return pd.read_parquet(base, filesystem=fs)


def spec_file(tmp_path, name, stages):
    doc = {
        "name": name, "objective": "tests.objectives:quadratic",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {
            "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
            "x": {"min": 0.0, "max": 1.0},
            "opt": {"values": ["sgd", "adam"]},
        },
        "stages": stages,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def sweep_main(*args):
    """``sweep ARGS`` in this process (so it runs on the session Ray): (status, stdout)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(list(args))
    return status, out.getvalue() + err.getvalue()


STAGES = [{"plan": "random", "trials": 6, "seed": 1},
          {"plan": "refine", "trials": 4, "top_k": 2}]


@pytest.fixture(scope="module")
def first_run(ray_session, s3, tmp_path_factory):
    """One two-stage sweep (random, then refine around the top 2) to s3://BUCKET/runs."""
    spec = spec_file(tmp_path_factory.mktemp("s3spec"), "on-s3", STAGES)
    status, out = sweep_main("run", spec, "--results", results_root(s3, "runs", "on-s3"),
                             "--quiet")
    assert status == 0, out
    return {"spec": spec, "out": out, "df": read_trials(s3, "runs/on-s3/trials")}


def test_results_land_in_the_bucket_in_the_documented_layout(s3, first_run):
    found = keys(s3, "runs/on-s3/")
    assert "runs/on-s3/spec.yaml" in found
    parts = [k for k in found if k.endswith(".parquet")]
    assert parts and all(k.startswith("runs/on-s3/trials/stage=") for k in parts)
    assert {k.split("/")[3] for k in parts} == {"stage=0", "stage=1"}
    assert all(k.rsplit("/", 1)[1].startswith("part-") for k in parts)
    assert "runs/on-s3/stages/stage-1.json" in found  # the refine stage's anchors and boxes
    assert not [k for k in found if "/.tmp-" in k or "/.probe-" in k], found
    assert "runs/on-s3/lock.json" not in found  # released at the end

    df = first_run["df"]
    assert len(df) == 10 and df["trial_id"].is_unique
    assert set(df["status"]) == {"ok"}
    assert sorted(df["stage"].astype(int).value_counts().items()) == [(0, 6), (1, 4)]
    # Each fine trial's anchor is a trial of either stage (the adaptive refine moves its
    # boxes to better fine trials as they finish).
    assert set(df.loc[df["stage"].astype(int) == 1, "parent_id"]) <= set(df["trial_id"])


def test_rerun_resumes_from_the_bucket_and_reruns_nothing(s3, first_run):
    before = keys(s3, "runs/on-s3/trials/")
    status, out = sweep_main("run", first_run["spec"], "--results", uri(s3, "runs"), "--quiet")
    assert status == 0, out
    assert keys(s3, "runs/on-s3/trials/") == before  # no new part file: nothing ran
    df = read_trials(s3, "runs/on-s3/trials")
    assert len(df) == 10
    assert sorted(df["started_at"]) == sorted(first_run["df"]["started_at"])


def test_status_top_report_read_the_uri(s3, first_run, tmp_path):
    """From another process, with only the credentials and the URI of the sweep."""
    where = uri(s3, "runs/on-s3")
    status = sweep_cli("status", where, env=s3["env"], cwd=tmp_path, timeout=120)
    assert "10 trials stored" in status.stdout, status.stdout
    assert "driver: none running" in status.stdout

    top = sweep_cli("top", where, "-k", "3", "--format", "json", env=s3["env"], cwd=tmp_path,
                    timeout=120)
    best = json.loads(top.stdout)
    assert len(best) == 3
    df = first_run["df"]
    assert best[0]["trial_id"] == df.loc[df["metrics.loss"].idxmin(), "trial_id"]

    report = tmp_path / "report.html"
    rep = sweep_cli("report", where, "-o", str(report), env=s3["env"], cwd=tmp_path,
                    timeout=180)
    assert report.is_file() and report.stat().st_size > 1000, rep.stdout + rep.stderr


def test_resolve_path_keeps_the_uri_options_on_the_root():
    root, name = cli.resolve_path(
        "s3://bucket/a/b/my-sweep?endpoint_override=127.0.0.1:9000&scheme=http")
    assert (root, name) == ("s3://bucket/a/b?endpoint_override=127.0.0.1:9000&scheme=http",
                            "my-sweep")
    assert cli.resolve_path("s3://bucket/a/my-sweep/") == ("s3://bucket/a", "my-sweep")
    assert cli.resolve_path("gs://bucket/my-sweep") == ("gs://bucket", "my-sweep")


def test_sweep_run_prints_where_the_results_are_as_a_uri(s3, first_run):
    """The 'results:' hint must be usable as printed: a URI, not a bucket-relative path
    (``pandas.read_parquet("sweep-results/runs/...")`` would look on the local disk)."""
    lines = [ln for ln in first_run["out"].splitlines() if ln.startswith("results:")]
    assert lines, first_run["out"]
    assert lines[0].split(":", 1)[1].strip().startswith(f"s3://{BUCKET}/runs/on-s3/trials"), (
        lines[0])


def test_fresh_moves_the_old_results_aside_in_the_bucket(s3, tmp_path):
    spec = spec_file(tmp_path, "fresh-s3", [{"plan": "random", "trials": 3, "seed": 2}])
    status, out = sweep_main("run", spec, "--results", results_root(s3, "fresh", "fresh-s3"),
                             "--quiet")
    assert status == 0, out
    first = read_trials(s3, "fresh/fresh-s3/trials")
    status, out = sweep_main("run", spec, "--results", uri(s3, "fresh"), "--quiet", "--fresh")
    assert status == 0, out
    found = keys(s3, "fresh/")
    old = sorted({k.split("/")[1] for k in found if k.split("/")[1].startswith("fresh-s3.old-")})
    assert len(old) == 1, found
    assert f"fresh/{old[0]}/spec.yaml" in found
    moved = read_trials(s3, f"fresh/{old[0]}/trials")
    assert sorted(moved["started_at"]) == sorted(first["started_at"])
    again = read_trials(s3, "fresh/fresh-s3/trials")
    assert len(again) == 3
    assert set(again["started_at"]).isdisjoint(set(first["started_at"]))  # all ran again


def test_unreachable_results_root_fails_before_any_trial(s3, tmp_path):
    spec = spec_file(tmp_path, "no-bucket", [{"plan": "random", "trials": 2}])
    dead = free_port()
    status, out = sweep_main("run", spec, "--results",
                             f"s3://{BUCKET}/x?endpoint_override=127.0.0.1:{dead}&scheme=http"
                             "", "--quiet")
    assert status == 2, out
    assert "sweep: error:" in out


def test_a_head_pod_that_restarts_loses_at_most_the_last_seconds(s3, tmp_path):
    """The journal on the driver's disk goes with a restarted head pod: what was shipped
    to the bucket (every ``ship_seconds``) is recovered by the next driver."""
    from sweep.core.records import TrialRecord
    from sweep.space import Space, Uniform
    from sweep.store.codec import Codec

    root = results_root(s3, "headpod", "pod")
    codec = Codec.of(Space({"x": Uniform(0, 1)}))

    def rec(i):
        return TrialRecord(sweep="pod", stage=0, trial_id=f"t{i}", status="ok",
                           params={"x": i / 100}, metrics={"loss": float(i)},
                           started_at=1.7e9 + i, finished_at=1.7e9 + i + 1, duration_s=1.0)

    def writer(disk, **options):
        folder = ResultsFolder(root, "pod", journal_dir=str(tmp_path / disk))
        return ResultsWriter(folder, codec, **options)

    first = writer("disk-1", ship_seconds=0.0)
    first.add([rec(i) for i in range(5)])      # shipped at once (ship_seconds=0)
    first.add([rec(i) for i in range(5, 12)])
    assert any(k.startswith("headpod/pod/.journal/") for k in keys(s3, "headpod/pod/"))
    shutil.rmtree(tmp_path / "disk-1")          # the pod restarts: its disk is gone
    # Without shipping (today's journal alone) all 12 would be lost with the disk.
    second = writer("disk-2")
    assert second.recover() == 12
    df = ResultsReader(second.folder, codec).read()
    assert sorted(df["trial_id"]) == sorted(f"t{i}" for i in range(12))
    # Folded, then removed (a folder marker of pyarrow's may stay).
    assert not [k for k in keys(s3, "headpod/pod/.journal/") if not k.endswith("/")]
    # After a normal flush nothing of the run's journal stays in the bucket either.
    third = writer("disk-3", ship_seconds=0.0)
    third.add([rec(100)])
    third.flush()
    assert not [k for k in keys(s3, "headpod/pod/.journal/") if not k.endswith("/")]


def test_a_killed_drivers_journal_and_its_shipped_segments_fold_once(s3, tmp_path):
    """Issue 25, item 18: a driver SIGKILLed with results on S3 leaves each result twice,
    in its journal on this disk and in the segments it shipped to the bucket; the rerun
    folded both (61 Parquet rows for 60 trials, counted twice by pandas and DuckDB)."""
    from sweep.core.records import Report, TrialRecord
    from sweep.space import Space, Uniform
    from sweep.store.codec import Codec

    root = results_root(s3, "killed", "k")
    codec = Codec.of(Space({"x": Uniform(0, 1)}))

    def rec(i):
        return TrialRecord(sweep="k", stage=0, trial_id=f"t{i}", status="ok",
                           params={"x": i / 100}, metrics={"loss": float(i)},
                           started_at=1.7e9 + i, finished_at=1.7e9 + i + 1, duration_s=1.0)

    def writer(**options):
        folder = ResultsFolder(root, "k", journal_dir=str(tmp_path / "disk"))
        return ResultsWriter(folder, codec, **options)

    first = writer(ship_seconds=0.0)
    first.add([rec(i) for i in range(30)])
    first.add_reports("k", 0, [Report(f"t{i}", s, {"loss": s / 10}, 1.7e9 + s)
                               for i in range(3) for s in range(4)])
    first.add([rec(i) for i in range(30, 60)])  # shipped too (ship_seconds=0)
    first.ship()
    assert any(k.startswith("killed/k/.journal/") for k in keys(s3, "killed/k/"))
    del first  # SIGKILLed: nothing flushed; its journal stays on this disk
    second = writer()
    assert second.recover() == 60
    df = read_trials(s3, "killed/k/trials")
    assert len(df) == 60 and df["trial_id"].is_unique
    fs, base = pafs.FileSystem.from_uri(uri(s3, "killed/k/curves"))
    curves = pd.read_parquet(base, filesystem=fs)
    assert len(curves) == 12 and curves["seq"].is_unique
    assert second.recover() == 0  # and nothing the next time
    assert len(read_trials(s3, "killed/k/trials")) == 60


def test_status_top_report_on_an_unreachable_endpoint_are_one_line_exit_2(s3, tmp_path):
    """Issue 25, item 20: ``run`` said so in one line; status, top and report ended in a
    traceback."""
    dead = free_port()
    where = f"s3://{BUCKET}/runs/on-s3?endpoint_override=127.0.0.1:{dead}&scheme=http"
    for command in (["status", where], ["top", where], ["top", where, "--format", "json"],
                    ["report", where, "-o", str(tmp_path / "r.html")]):
        status, out = sweep_main(*command)
        assert status == 2, (command, out)
        assert out.startswith("sweep: error: could not read the results at s3://"), out
        assert len(out.strip().splitlines()) == 1 and "Traceback" not in out


def test_a_uri_with_a_space_says_to_write_it_as_percent_20(s3, tmp_path):
    status, out = sweep_main("status", f"s3://{BUCKET}/my runs/x?{s3['query']}")
    assert status == 2 and "write each space as %20" in out
    assert f"s3://{BUCKET}/my%20runs?" in out
