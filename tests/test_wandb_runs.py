"""W&B training scripts under sweep (``sweep/wandb_runs.py``), with the real ``wandb``
package in offline mode: parameters reach ``wandb.config``, logged steps and the summary
come back, live while the script runs, for scripts and for in-process functions, with
nothing written outside the trial's folder and no network connection."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

try:
    import wandb  # the real package: these tests run it offline
except ImportError:  # pragma: no cover - a missing dev dependency
    pytest.fail("these tests need the wandb package: python -m pip install wandb "
                "(or install the project's dev extras)", pytrace=False)

from sweep.worker import wandb_offline as wandb_runs

SCRIPT = Path(__file__).parent / "data" / "wandb_scripts" / "train.py"
PARAMS = {"lr": 0.05, "layers": 3, "epochs": 5, "optimizer": {"name": "adam", "momentum": 0.5}}
DEADLINE_S = 60.0


def _load_script() -> Any:
    spec = importlib.util.spec_from_file_location("wandb_train_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT_MODULE = _load_script()


def expected_steps(params: dict[str, Any]) -> list[tuple[int, dict[str, float]]]:
    out = []
    for epoch in range(params["epochs"]):
        m = SCRIPT_MODULE.epoch_metrics(params["lr"], params["layers"],
                                        params["optimizer"]["momentum"], epoch)
        out.append((epoch, {"epoch": float(epoch), "loss": m["loss"], "acc": m["acc"],
                            "grad.norm": params["lr"] * (epoch + 1)}))
    return out


def seen_config(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith("config: ")]
    assert len(lines) == 1, stdout
    return json.loads(lines[0][len("config: "):])


def run_script(trial_dir: Path, params: dict[str, Any], *, extra_env: dict[str, str] | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **wandb_runs.prepare(str(trial_dir), params, sweep_name="demo",
                                                trial_id="trial-1"))
    for key, value in (extra_env or {}).items():
        if value:
            env[key] = value
        else:
            env.pop(key, None)
    return subprocess.run([sys.executable, str(SCRIPT)], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=DEADLINE_S, check=False)


# ------------------------------------------------------------------ prepare


def test_prepare_writes_wandb_param_file_and_offline_env(tmp_path):
    params = {"lr": 1e-5, "name": "1e-5", "flag": True, "layers": [64, 32],
              "opt": {"name": "adam", "betas": (0.9, 0.999)}}
    env = wandb_runs.prepare(str(tmp_path / "t"), params, sweep_name="my/sweep",
                             trial_id="8bf0b5019eb95080")
    path = tmp_path / "t" / wandb_runs.PARAMS_FILE
    assert env["WANDB_SWEEP_PARAM_PATH"] == str(path)
    loaded = yaml.safe_load(path.read_text())
    assert loaded == {"wandb_version": 1, "lr": {"value": 1e-5}, "name": {"value": "1e-5"},
                      "flag": {"value": True}, "layers": {"value": [64, 32]},
                      "opt": {"value": {"name": "adam", "betas": [0.9, 0.999]}}}
    assert env["WANDB_MODE"] == "offline"
    assert env["WANDB_DIR"] == str(tmp_path / "t")
    assert env["WANDB_RUN_ID"] == env["WANDB_NAME"] == "8bf0b5019eb95080"
    assert env["WANDB_PROJECT"] == "my-sweep"  # W&B refuses "/" in project names
    for key in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        assert env[key].startswith(str(tmp_path / "t") + os.sep)
    assert all(isinstance(v, str) for v in env.values())


# ------------------------------------------------------------------ a script


def test_script_gets_its_params_and_its_metrics_come_back(tmp_path):
    proc = run_script(tmp_path / "trial", PARAMS)
    assert proc.returncode == 0, proc.stderr
    config = seen_config(proc.stdout)
    assert {k: config[k] for k in PARAMS} == PARAMS  # the sweep's values, nested dict too
    assert config["sleep_s"] == 0.0  # a default the sweep did not set
    assert proc.stderr.strip() == ""  # silent: no banners in the trial's error tail

    want = expected_steps(PARAMS)
    assert wandb_runs.read_steps(str(tmp_path / "trial")) == want  # no _runtime, no "phase"
    last = want[-1][1]
    assert wandb_runs.summary(str(tmp_path / "trial")) == {
        **last, "best_acc": max(m["acc"] for _, m in want)}

    reader = wandb_runs.RunReader(str(tmp_path / "trial"))
    assert reader.poll() == want
    assert reader.poll() == []  # nothing new
    assert reader.finished and reader.exit_code == 0
    assert reader.run_id == "trial-1"
    assert {k: reader.config[k] for k in PARAMS} == PARAMS


def test_crashed_script_keeps_the_steps_it_logged(tmp_path):
    proc = run_script(tmp_path / "trial", {**PARAMS, "fail_at_epoch": 3})
    assert proc.returncode != 0
    assert "diverged at epoch 3" in proc.stderr
    want = expected_steps(PARAMS)[:3]
    reader = wandb_runs.RunReader(str(tmp_path / "trial"))
    assert reader.poll() == want
    assert reader.summary() == want[-1][1]
    assert reader.finished and reader.exit_code != 0


def test_steps_arrive_while_the_script_runs(tmp_path):
    """wandb-core writes the .wandb file every WANDB__TRANSACTION_LOG_FLUSH_INTERVAL
    seconds (prepare sets 0.25 s; W&B's default, 15 s, would hold a short run's records
    to the end), so a reader sees each step well before the script ends."""
    params = {**PARAMS, "sleep_s": 0.7}
    env = dict(os.environ, **wandb_runs.prepare(str(tmp_path / "trial"), params,
                                                sweep_name="demo", trial_id="live"))
    proc = subprocess.Popen([sys.executable, str(SCRIPT)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deliveries: list[tuple[list[int], bool]] = []
    try:
        with wandb_runs.watch(str(tmp_path / "trial"),
                              lambda steps: deliveries.append(
                                  ([s for s, _ in steps], proc.poll() is None)),
                              interval_s=0.1) as reader:
            deadline = time.monotonic() + DEADLINE_S
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proc.poll() == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert reader.steps == expected_steps(params)
    live = [step for steps, alive in deliveries if alive for step in steps]
    # The script sleeps 0.7 s after each step: at least the first 4 steps are read
    # while it runs (each within about a flush interval plus a poll of being logged).
    assert live[:4] == [0, 1, 2, 3], deliveries
    assert [s for steps, _ in deliveries for s in steps] == [0, 1, 2, 3, 4]


# --------------------------------------------------------- the reader's framing


def test_reader_reads_a_file_written_in_pieces_and_skips_damage(tmp_path):
    """A run file of several 32 KiB blocks, copied a few hundred bytes at a time: each
    poll returns only whole records, and together they are every step, once."""

    def chatty(config):
        import wandb as wb

        run = wb.init()
        for i in range(400):
            wb.log({"loss": 1.0 / (i + 1), "acc": i / 400, "lr": config["lr"],
                    "layer": {"0": {"grad_norm": i * 0.5}}})
        run.finish()

    with wandb_runs.in_process(str(tmp_path / "src"), {"lr": 0.1}, sweep_name="demo",
                               trial_id="chatty") as info:
        chatty({"lr": 0.1})
    full = wandb_runs.find_run_file(str(tmp_path / "src"))
    assert full is not None
    data = Path(full).read_bytes()
    assert len(data) > 3 * 32768
    assert len(info.steps) == 400 and info.steps[7] == (
        7, {"loss": 1 / 8, "acc": 7 / 400, "lr": 0.1, "layer.0.grad_norm": 3.5})

    run_dir = tmp_path / "copy" / "wandb" / "offline-run-20250101_000000-chatty"
    run_dir.mkdir(parents=True)
    target = run_dir / "run-chatty.wandb"
    reader = wandb_runs.RunReader(str(tmp_path / "copy"))
    assert reader.poll() == []  # no file yet
    got = []
    with open(target, "wb") as f:
        for start in range(0, len(data), 997):
            f.write(data[start:start + 997])
            f.flush()
            got.extend(reader.poll())
    assert got == info.steps
    assert reader.summary() == info.summary

    # One damaged byte in the second block: that block's records are lost, the rest read.
    damaged = bytearray(data)
    damaged[32768 + 500] ^= 0xFF
    target.write_bytes(bytes(damaged))
    steps = wandb_runs.read_steps(str(tmp_path / "copy"))
    assert 0 < len(steps) < 400
    assert steps[0] == info.steps[0] and steps[-1] == info.steps[-1]


# ----------------------------------------------------------- in this process


def test_function_agent_trials_in_one_process(tmp_path):
    """W&B's function agents call the same function once per run in one process; under
    sweep each call is its own offline run with its own params, even when the function
    forgets wandb.finish()."""

    def forgetful(config):
        import wandb as wb

        wb.init()
        wb.log({"loss": wb.config.lr * 10})  # and no finish()

    before = dict(os.environ)
    trials = [("a", PARAMS, SCRIPT_MODULE.train),
              ("b", {**PARAMS, "lr": 0.2}, forgetful),
              ("c", {**PARAMS, "lr": 0.01, "layers": 1, "epochs": 3,
                     "optimizer": {"name": "sgd", "momentum": 0.0}}, SCRIPT_MODULE.train)]
    infos = {}
    for name, params, fn in trials:
        with wandb_runs.in_process(str(tmp_path / name), params, sweep_name="demo",
                                   trial_id=name) as info:
            assert os.environ["WANDB_SWEEP_PARAM_PATH"] == str(tmp_path / name /
                                                               wandb_runs.PARAMS_FILE)
            assert fn(dict(params)) is None
        assert wandb.run is None  # nothing left open for the next trial
        assert dict(os.environ) == before  # environment restored
        infos[name] = info

    a, b, c = infos["a"], infos["b"], infos["c"]
    assert a.enabled and not a.finished_open_run
    assert a.steps == expected_steps(PARAMS)
    assert {k: a.config[k] for k in PARAMS} == PARAMS
    assert b.finished_open_run
    assert b.steps == [(0, {"loss": 2.0})] and b.summary == {"loss": 2.0}
    assert b.config["lr"] == 0.2
    want_c = expected_steps(trials[2][1])
    assert c.steps == want_c and c.summary["loss"] == want_c[-1][1]["loss"]
    assert c.config["optimizer"] == {"name": "sgd", "momentum": 0.0}


def test_in_process_finishes_a_failed_run_and_reports_live(tmp_path):
    seen: list[int] = []
    with (pytest.raises(RuntimeError, match="diverged at epoch 2"),
          wandb_runs.in_process(str(tmp_path / "t"), {**PARAMS, "fail_at_epoch": 2},
                                sweep_name="demo", trial_id="t",
                                on_steps=lambda steps: seen.extend(s for s, _ in steps))):
        SCRIPT_MODULE.train()
    assert wandb.run is None
    assert seen == [0, 1]
    reader = wandb_runs.RunReader(str(tmp_path / "t"))
    assert [s for s, _ in reader.poll()] == [0, 1]
    assert reader.finished and reader.exit_code == 1


def test_a_retry_in_the_same_folder_reads_only_its_own_run(tmp_path):
    def short(config):
        import wandb as wb

        with wb.init() as run:
            run.log({"loss": config["lr"]})

    for lr in (0.5, 0.25):
        with wandb_runs.in_process(str(tmp_path / "t"), {"lr": lr}, sweep_name="demo",
                                   trial_id="t") as info:
            short({"lr": lr})
        assert info.steps == [(0, {"loss": lr})]
        assert info.config == {"lr": lr}
    assert wandb_runs.read_steps(str(tmp_path / "t")) == [(0, {"loss": 0.25})]
    assert len(list((tmp_path / "t" / "wandb").glob("offline-run-*"))) == 2


def test_in_process_without_wandb_does_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` now fails
    before = dict(os.environ)
    with wandb_runs.in_process(str(tmp_path / "t"), PARAMS, sweep_name="demo",
                               trial_id="t") as info:
        assert dict(os.environ) == before
    assert not info.enabled and info.steps == [] and info.summary == {}
    assert not (tmp_path / "t").exists()


# ------------------------------------------------------- offline, and contained


def test_nothing_outside_the_trial_and_no_network(tmp_path):
    """HOME, the working directory and TMPDIR stay empty; a listening socket that W&B's
    server address and every proxy variable point at gets no connection."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    tmp = Path(tempfile.mkdtemp(prefix="swt"))  # short: wandb puts a Unix socket in it
    trap = socket.socket()
    trap.bind(("127.0.0.1", 0))
    trap.listen(16)
    trap.setblocking(False)
    url = f"http://127.0.0.1:{trap.getsockname()[1]}"
    try:
        extra = {"HOME": str(home), "TMPDIR": str(tmp), "WANDB_BASE_URL": url,
                 "HTTP_PROXY": url, "HTTPS_PROXY": url, "ALL_PROXY": url,
                 "http_proxy": url, "https_proxy": url}
        for key in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "WANDB_API_KEY",
                    "NO_PROXY", "no_proxy"):
            extra[key] = ""  # removed from the script's environment
        t0 = time.monotonic()
        proc = run_script(tmp_path / "trial", PARAMS, extra_env=extra, cwd=cwd)
        elapsed = time.monotonic() - t0
        assert proc.returncode == 0, proc.stderr
        assert wandb_runs.read_steps(str(tmp_path / "trial")) == expected_steps(PARAMS)
        assert elapsed < 30, elapsed
        assert sorted(p.name for p in (tmp_path / "trial").iterdir()) == [
            "wandb", wandb_runs.PARAMS_FILE]
        assert list(home.rglob("*")) == []
        assert list(cwd.rglob("*")) == []
        assert list(tmp.rglob("*")) == []
        with pytest.raises(BlockingIOError):
            trap.accept()  # nobody knocked
    finally:
        trap.close()
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------- round 2 (issue 25)


class _CountingServer:
    """An HTTP server on 127.0.0.1 that counts the requests it gets and answers 401 (a
    stand-in for W&B's server: a client that goes online fails fast, and is counted)."""

    def __init__(self) -> None:
        import http.server
        import threading

        counter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                counter.requests.append(f"{self.command} {self.path}")
                body = b'{"errors": [{"message": "unauthorized"}]}'
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.requests: list[str] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def wandb_server(monkeypatch):
    """W&B's server address and an API key in the environment, as a logged-in user has
    them; the server counts what reaches it."""
    server = _CountingServer()
    monkeypatch.setenv("WANDB_BASE_URL", server.url)
    monkeypatch.setenv("WANDB_API_KEY", "0123456789" * 4)
    yield server
    server.close()


def _online_by_argument(config):
    import wandb as wb

    with wb.init(mode="online") as run:
        run.log({"loss": 0.5})


def _online_by_settings(config):
    import wandb as wb

    wb.setup(settings=wb.Settings(mode="online"))
    wb.login()
    with wb.init(settings=wb.Settings(mode="online")) as run:
        run.log({"loss": 0.5})


def _online_by_environment(config):
    import wandb as wb

    os.environ["WANDB_MODE"] = "online"
    with wb.init(settings={"mode": "online"}) as run:
        run.log({"loss": 0.5})


@pytest.mark.parametrize("fn", [_online_by_argument, _online_by_settings,
                                _online_by_environment])
def test_a_function_that_asks_for_online_stays_offline(tmp_path, wandb_server, fn):
    """Issue 25, item 12 (security): wandb.init(mode="online"), Settings(mode="online")
    or WANDB_MODE=online set by the code itself sent the user's API key to W&B's server.
    Offline holds whatever the code asks: no request reaches the server, and the run's
    metrics come back from its offline file."""
    with wandb_runs.in_process(str(tmp_path / "t"), {"lr": 0.1}, sweep_name="demo",
                               trial_id="t") as info:
        fn({})
    assert wandb_server.requests == []
    assert info.steps == [(0, {"loss": 0.5})]


def test_a_script_that_asks_for_online_stays_offline(tmp_path, wandb_server, monkeypatch):
    """The same for a command (W&B's command agents): every Python the trial's command
    starts gets the guard (PYTHONPATH's sitecustomize), the script's own sitecustomize
    still runs after it."""
    script = tmp_path / "online.py"
    script.write_text(textwrap.dedent("""
        import os, sitecustomize, wandb
        print("theirs" if getattr(sitecustomize, "THEIRS", False) else "not theirs")
        os.environ["WANDB_MODE"] = "online"
        wandb.login()
        run = wandb.init(mode="online", settings=wandb.Settings(mode="online"))
        run.log({"loss": 0.25, "ok": True})
        run.finish()
    """))
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text("THEIRS = True\n")
    monkeypatch.setenv("PYTHONPATH", str(theirs))  # the worker's, which prepare extends
    env = dict(os.environ)
    env.update(wandb_runs.prepare(str(tmp_path / "t"), {"lr": 0.1}, sweep_name="demo",
                                  trial_id="t"))
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=DEADLINE_S, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "theirs"
    assert wandb_server.requests == []
    assert wandb_runs.read_steps(str(tmp_path / "t")) == [(0, {"loss": 0.25, "ok": 1.0})]


def test_booleans_logged_with_wandb_are_kept_as_1_and_0_as_in_a_result(tmp_path):
    """Issue 25, item 8: booleans logged with wandb.log were dropped, while a Python
    objective's booleans are kept as 1/0: one rule for both (returned.numeric_metrics)."""
    from sweep.worker.returned import check_result

    logged = {"loss": 0.5, "converged": True, "diverged": False, "nested": {"flag": True}}

    def logs_bools(config):
        import wandb as wb

        with wb.init() as run:
            run.log(logged)

    with wandb_runs.in_process(str(tmp_path / "t"), {}, sweep_name="demo",
                               trial_id="t") as info:
        logs_bools({})
    _, as_result, _ = check_result(logged, "loss")
    assert info.steps == [(0, as_result)]
    assert as_result == {"loss": 0.5, "converged": 1.0, "diverged": 0.0, "nested.flag": 1.0}
    assert info.summary == as_result


def test_a_second_wandb_init_keeps_the_first_runs_metrics(tmp_path):
    """Issue 25 (weak): a second wandb.init() in one trial discarded what the first run
    logged (the reader started over with the newer run)."""
    def two_runs(config):
        import wandb as wb

        with wb.init() as run:
            run.log({"loss": 0.5})
        with wb.init() as run:
            run.log({"acc": 0.75})

    with wandb_runs.in_process(str(tmp_path / "t"), {}, sweep_name="demo",
                               trial_id="t") as info:
        two_runs({})
    assert info.steps == [(0, {"loss": 0.5}), (0, {"acc": 0.75})]
    assert info.summary == {"loss": 0.5, "acc": 0.75}


def test_a_logged_step_wakes_the_watcher_no_timer_needed(tmp_path):
    """Issue 25, item 6: the watcher looked every 0.5 s (and W&B flushed its file every
    0.25 s): a command's wandb.log reached the driver ~0.5-0.75 s late. Now a change of
    the run file wakes it: with a timer of an hour, a step still arrives while the script
    waits after logging it."""
    params = {**PARAMS, "epochs": 2, "sleep_s": 120.0}
    env = dict(os.environ, **wandb_runs.prepare(str(tmp_path / "trial"), params,
                                                sweep_name="demo", trial_id="live"))
    proc = subprocess.Popen([sys.executable, str(SCRIPT)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    seen: list[int] = []
    try:
        with wandb_runs.watch(str(tmp_path / "trial"),
                              lambda steps: seen.extend(s for s, _ in steps),
                              interval_s=3600.0):
            deadline = time.monotonic() + DEADLINE_S
            while not seen and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert seen == [0] and proc.poll() is None  # the script sleeps after step 0
            proc.kill()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_a_folder_watch_wakes_on_changes_in_new_subfolders(tmp_path):
    from sweep.worker.file_events import FolderWatch

    with FolderWatch(str(tmp_path), depth=2) as watch:
        if not watch.live:
            pytest.skip("no inotify here: FolderWatch falls back to timed waits")
        assert watch.wait(0.05) is False  # nothing happened
        (tmp_path / "wandb" / "run-1").mkdir(parents=True)
        assert watch.wait(60) is True
        while watch.wait(0.05):  # the rest of the creation's events
            pass
        (tmp_path / "wandb" / "run-1" / "run-1.wandb").write_bytes(b"x")
        assert watch.wait(60) is True
        while watch.wait(0.05):
            pass
        (tmp_path / "wandb" / "run-1" / "files").mkdir()  # depth 3: not watched
        (tmp_path / "wandb" / "run-1" / "files" / "x").write_bytes(b"x")
        while watch.wait(0.05):  # the mkdir itself is seen in run-1
            pass
        (tmp_path / "wandb" / "run-1" / "files" / "x").write_bytes(b"y")
        assert watch.wait(0.2) is False
        import threading

        threading.Timer(0.05, watch.wake).start()
        assert watch.wait(60) is True
