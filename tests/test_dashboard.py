"""The live dashboard's server: its JSON, live updates from the journal, bad input kept to
the sweep it concerns, and what it refuses (writes, foreign Host headers, no token).
No browser here (tests/test_dashboard_browser.py drives Chromium); no Ray."""

from __future__ import annotations

import base64
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from sweep.cli import _dashboard_roots, sweep_meta
from sweep.views.dashboard_server import DashboardServer, is_loopback
from tests.fake_sweep import FakeDriver
from tests.test_s3 import results_root, s3  # noqa: F401 - s3: the moto server fixture


def get(server: DashboardServer, path: str, headers: dict | None = None,
        method: str = "GET") -> tuple[int, dict | str, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}",
                                     headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read().decode()
            status, got = response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        body, status, got = exc.read().decode(), exc.code, dict(exc.headers)
    kind = got.get("Content-Type", "")
    return status, json.loads(body) if "json" in kind else body, got


def values(array) -> np.ndarray:
    """A figure's array: a JSON list, or plotly's typed array {"dtype", "bdata"}."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
    return np.asarray(array)


def wait_for(check, seconds: float = 20.0, every: float = 0.05):
    """Poll ``check()`` until it returns something true; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(every)


@pytest.fixture
def serve():
    servers = []

    def start(*roots, **options) -> DashboardServer:
        options.setdefault("poll", 0.05)
        server = DashboardServer([str(r) for r in roots], port=0, describe=sweep_meta,
                                 **options)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()


def test_the_sweeps_list_and_a_sweeps_summary(tmp_path, serve):
    FakeDriver(str(tmp_path), first=40, second=10).run(first=40, second=10)
    server = serve(tmp_path)
    status, data, _ = get(server, "/api/sweeps")
    assert status == 200 and data["roots"] == [{"root": str(tmp_path), "error": None}]
    (demo,) = data["sweeps"]
    assert demo["key"] == "demo" and demo["metric"] == "loss" and demo["goal"] == "minimize"
    assert demo["trials"] == 50 and demo["ranked"] == 48 and demo["state"] == "finished"
    s0, s1 = demo["stages"]
    assert s0["planned"] == 40 and s0["done"] == 40 and s0["counts"]["failed"] == 2
    assert s1["planned"] == 10 and s1["fixed"] == {"epochs": 15}
    assert demo["driver"] == {"state": "none"}
    # Unchanged since a version: a short answer.
    status, same, _ = get(server, f"/api/sweeps/demo?since={demo['version']}")
    assert same == {"version": demo["version"], "same": True}


def test_figures_table_trial_and_importance(tmp_path, serve):
    driver = FakeDriver(str(tmp_path)).run(first=40, second=10)
    server = serve(tmp_path)
    _, figs, _ = get(server, "/api/sweeps/demo/figures")
    assert [p["name"] for p in figs["params"]] == ["lr", "opt", "x2", "x3", "x4"]
    assert figs["params"][0]["figure"]["layout"]["xaxis"]["type"] == "log"
    assert figs["curves"]["layout"]["title"]["text"].startswith("loss by step")
    assert figs["best"] is not None and figs["parcoords"] is not None

    _, top, _ = get(server, "/api/sweeps/demo/table?k=10")
    labels = [c["label"] for c in top["columns"]]
    assert labels[:4] == ["trial", "stage", "status", "loss"] and top["total"] == 48
    assert {"attempts", "node", "GPUs", "epochs"} <= set(labels)  # epochs: 3, then 15
    losses = [row[3] for row in top["rows"]]
    assert len(losses) == 10 and losses == sorted(losses)
    _, latest, _ = get(server, "/api/sweeps/demo/table?order=latest&k=10")
    assert latest["rows"][0][0] == f"s1-t{driver.count - 1:04d}" and latest["total"] == 50

    _, failed, _ = get(server, "/api/sweeps/demo/trials/s0-t0000")
    assert failed["fields"]["status"] == "failed" and "CUDA out of memory" in failed["error"]
    _, child, _ = get(server, "/api/sweeps/demo/trials/s1-t0040")
    assert [p["trial_id"] for p in child["lineage"]["parents"]] == ["s0-t0002"]
    assert child["params"]["epochs"] == 15 and child["figure"]["data"]
    _, parent, _ = get(server, "/api/sweeps/demo/trials/s0-t0002")
    assert len(parent["lineage"]["children"]) == 10
    assert get(server, "/api/sweeps/demo/trials/nope")[0] == 404
    assert get(server, "/api/sweeps/nope")[0] == 404

    def fitted():
        return get(server, "/api/sweeps/demo/importance")[1]["result"]

    result = wait_for(fitted, 60)
    assert result["params"][0]["name"] == "lr" and result["trials"] == 48


def test_trials_and_curves_show_up_before_they_reach_parquet(tmp_path, serve):
    driver = FakeDriver(str(tmp_path), flush_every=10**6)  # everything stays in the journal
    server = serve(tmp_path)
    assert get(server, "/api/sweeps/demo")[1]["trials"] == 0
    driver.report("s0-live", 0, [1, 2], 1.0)  # a trial still running: a curve, no row
    summary = wait_for(lambda: (s := get(server, "/api/sweeps/demo")[1])["stages"][0][
        "running"] == 1 and s)
    assert summary["trials"] == 0
    _, running, _ = get(server, "/api/sweeps/demo/trials/s0-live")
    assert running["running"] is True and running["figure"]["data"]
    for _ in range(3):
        driver.trial(0)
    summary = wait_for(lambda: (s := get(server, "/api/sweeps/demo")[1])["trials"] == 3 and s)
    assert summary["pending"] == 3
    driver.report("s0-live", 0, [3, 4, 5], 1.0)  # the curve grows

    assert len(values(running["figure"]["data"][0]["x"])) == 2
    wait_for(lambda: len(values(get(server, "/api/sweeps/demo/trials/s0-live")[1][
        "figure"]["data"][0]["x"])) == 5)
    driver.store.flush()  # now in Parquet: counted once
    wait_for(lambda: get(server, "/api/sweeps/demo")[1]["pending"] == 0)
    assert get(server, "/api/sweeps/demo")[1]["trials"] == 3


def test_bad_input_is_shown_for_its_sweep_and_the_rest_keeps_serving(tmp_path, serve):
    good, other = tmp_path / "a", tmp_path / "b"
    FakeDriver(str(good), name="good").run(first=12, second=3)
    bad = FakeDriver(str(good), name="bad").run(first=12, second=3)
    FakeDriver(str(other), name="elsewhere").run(first=12, second=3)
    (good / "bad" / "trials" / "stage=0" / "part-garbage.parquet").write_bytes(b"not parquet")
    bad.folder.write_text("stages/stage-1.json", "{not json")
    server = serve(good, other)
    _, data, _ = get(server, "/api/sweeps")
    by_key = {s["key"]: s for s in data["sweeps"]}
    assert set(by_key) == {"good", "bad", "elsewhere"}
    problems = " ".join(by_key["bad"]["problems"])
    assert "part-garbage.parquet" in problems and "stage-1.json" in problems
    assert by_key["bad"]["trials"] == 15  # the valid files are still read
    assert by_key["good"]["problems"] == [] and by_key["good"]["error"] is None
    bad.trial(0)  # read again: the store warned once, the page keeps saying it
    bad.store.flush()
    again = wait_for(lambda: (s := get(server, "/api/sweeps/bad")[1])["trials"] == 16 and s)
    assert any("part-garbage.parquet" in p for p in again["problems"])
    (good / "bad" / "trials" / "stage=0" / "part-garbage.parquet").unlink()
    bad.trial(0)
    bad.store.flush()
    again = wait_for(lambda: (s := get(server, "/api/sweeps/bad")[1])["trials"] == 17 and s)
    assert not any("part-garbage.parquet" in p for p in again["problems"])

    assert get(server, "/api/sweeps/elsewhere/table?order=latest")[1]["total"] == 15  # watched
    shutil.rmtree(other)  # a root that disappears
    time.sleep(0.2)

    def root_gone():
        _, d, _ = get(server, "/api/sweeps")
        return d if d["roots"][1]["error"] else None

    data = wait_for(root_gone)
    assert "is not a folder (or is gone)" in data["roots"][1]["error"]
    by_key = {s["key"]: s for s in data["sweeps"]}
    assert by_key["elsewhere"]["state"] == "error" and "gone" in by_key["elsewhere"]["error"]
    assert by_key["good"]["trials"] == 15 and by_key["good"]["state"] != "error"
    assert get(server, "/api/sweeps/good/figures")[0] == 200
    status, page, _ = get(server, "/api/sweeps/elsewhere/table?order=latest")
    assert status == 200 and page["total"] == 15  # what its page showed is still shown


def test_a_sweep_being_compacted_is_read_whole(tmp_path, serve):
    driver = FakeDriver(str(tmp_path), flush_every=1)  # a part file per trial: merges
    server = serve(tmp_path)
    seen = []
    done = threading.Event()

    def write():
        for _ in range(120):
            driver.trial(0, steps=1)
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    while not done.is_set():
        summary = get(server, "/api/sweeps/demo")[1]
        assert summary["error"] is None, summary["error"]
        seen.append(summary["trials"])
    writer.join()
    wait_for(lambda: get(server, "/api/sweeps/demo")[1]["trials"] == 120)
    assert seen == sorted(seen) and max(seen) <= 120  # never a trial twice, never one lost
    files = list((tmp_path / "demo" / "trials").rglob("part-*.parquet"))
    assert len(files) < 30  # compaction did run


def test_it_never_writes_into_the_results(tmp_path, serve):
    FakeDriver(str(tmp_path)).run(first=20, second=5)

    def listing():
        return sorted((str(p.relative_to(tmp_path)), p.stat().st_size, p.stat().st_mtime_ns)
                      for p in tmp_path.rglob("*"))

    before = listing()
    server = serve(tmp_path)
    for path in ["/api/sweeps", "/api/sweeps/demo", "/api/sweeps/demo/figures",
                 "/api/sweeps/demo/table?order=latest", "/api/sweeps/demo/trials/s0-t0003",
                 "/api/sweeps/demo/importance", "/", "/sweep/demo"]:
        assert get(server, path)[0] == 200, path
    for method in ("POST", "PUT", "DELETE"):
        assert get(server, "/api/sweeps/demo", method=method)[0] == 405
    time.sleep(0.3)
    assert listing() == before


def test_loopback_only_answers_loopback_host_names(tmp_path, serve):
    FakeDriver(str(tmp_path))
    server = serve(tmp_path)
    assert server.token is None and server.url == f"http://127.0.0.1:{server.port}/"
    for host in ("localhost", f"127.0.0.1:{server.port}", f"localhost:{server.port}"):
        assert get(server, "/api/sweeps", {"Host": host})[0] == 200
    status, body, _ = get(server, "/api/sweeps", {"Host": "attacker.example:80"})
    assert status == 403 and "loopback" in body["error"]
    assert get(server, "/api/sweeps/..%2F..%2Fetc/figures")[0] == 404
    assert get(server, "/static/../../cli.py")[0] == 404


def test_beyond_loopback_a_token_is_required(tmp_path, serve):
    FakeDriver(str(tmp_path))
    server = serve(tmp_path, host="0.0.0.0")
    assert server.token and len(server.token) >= 24
    assert server.url.endswith(f"/?token={server.token}")
    assert get(server, "/api/sweeps")[0] == 401
    assert get(server, "/api/sweeps?token=wrong")[0] == 401
    assert get(server, "/api/sweeps", {"Authorization": f"Bearer {server.token}"})[0] == 200
    # The page's address with the token: a cookie, and the token out of the address bar.
    opener = urllib.request.build_opener(urllib.request.HTTPErrorProcessor)
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}/?token={server.token}")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(request, timeout=10)
    assert info.value.code == 303 and info.value.headers["Location"] == "/"
    cookie = info.value.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert get(server, "/api/sweeps", {"Cookie": cookie.split(";")[0]})[0] == 200
    given = serve(tmp_path, host="0.0.0.0", token="s3cret-token")
    assert given.token == "s3cret-token"


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    assert not is_loopback("example.com")


def test_dashboard_paths(tmp_path, monkeypatch):
    FakeDriver(str(tmp_path / "results"))
    monkeypatch.chdir(tmp_path)
    assert _dashboard_roots([]) == ([str(tmp_path / "results")], None)
    assert _dashboard_roots(["demo"]) == ([str(tmp_path / "results")], "demo")
    assert _dashboard_roots([str(tmp_path / "results" / "demo")]) == (
        [str(tmp_path / "results")], "demo")
    assert _dashboard_roots(["s3://bucket/sweeps"]) == (["s3://bucket/sweeps"], None)
    from sweep.core.errors import SweepError

    with pytest.raises(SweepError, match="no such folder"):
        _dashboard_roots(["nowhere"])
    assert os.path.isdir(Path(tmp_path / "results"))


def test_a_sweep_run_from_python_is_described(tmp_path):
    # sweep.run with a callable stores `objective: python:module.fn`, which no file can
    # name again; the dashboard needs no objective and reads the rest.
    driver = FakeDriver(str(tmp_path))
    text = driver.text.replace("tests.objectives:quadratic", "python:tests.objectives.quadratic")
    meta = sweep_meta(text, "spec.yaml")
    assert meta.metric == "loss" and meta.scales["lr"] == "log"
    assert [s.planned for s in meta.stages] == [40, 10]


def test_an_object_store_root(serve, request):
    """s3:// (a local moto server): trials shipped to the bucket before any Parquet flush
    are shown, and counted once after it."""
    bucket = request.getfixturevalue("s3")
    root = results_root(bucket, "live", "demo")
    driver = FakeDriver(root, flush_every=10**6)
    driver.store.ship_seconds = 0.0  # ship every result to the bucket at once
    for _ in range(5):
        driver.trial(0)
    server = serve(root)
    _, data, _ = get(server, "/api/sweeps")
    assert data["roots"][0]["error"] is None, data
    summary = wait_for(lambda: (s := get(server, "/api/sweeps/demo")[1])["trials"] == 5 and s)
    assert summary["location"].startswith("s3://sweep-results/live/demo")
    _, figs, _ = get(server, "/api/sweeps/demo/figures")
    assert figs["curves"] is not None  # the reports were shipped too
    driver.store.flush()
    wait_for(lambda: get(server, "/api/sweeps/demo")[1]["pending"] == 0)
    assert get(server, "/api/sweeps/demo")[1]["trials"] == 5


def test_the_list_alone_keeps_summaries_not_tables(tmp_path, serve):
    driver = FakeDriver(str(tmp_path), flush_every=10**6)
    for _ in range(6):
        driver.trial(0)
    FakeDriver(str(tmp_path), name="other").run(first=10, second=2)
    server = serve(tmp_path)
    _, data, _ = get(server, "/api/sweeps")
    assert {s["key"]: s["trials"] for s in data["sweeps"]} == {"demo": 6, "other": 12}
    watches = {w.key: w for w in server.catalog.sweeps()}
    assert all(w.snapshot.data is None for w in watches.values())  # let go
    assert {s["key"]: s["trials"] for s in get(server, "/api/sweeps")[1]["sweeps"]} == {
        "demo": 6, "other": 12}  # the summaries stay
    driver.report("s0-live", 0, [1, 2], 1.0)  # a change: read again, summary right
    wait_for(lambda: get(server, "/api/sweeps")[1]["sweeps"][0]["stages"][0]["running"])
    assert get(server, "/api/sweeps")[1]["sweeps"][0]["trials"] == 6
    # Opening the sweep's page brings its table back, and keeps it.
    _, figs, _ = get(server, "/api/sweeps/demo/figures")
    assert figs["best"] is not None and watches["demo"].snapshot.data is not None
    get(server, "/api/sweeps")
    assert watches["demo"].snapshot.data is not None and watches["other"].snapshot.data is None
