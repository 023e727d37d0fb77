"""The live dashboard's latency and cost, and parameter importance against Optuna's.

Sections (each prints figures and asserts nothing; ``all`` runs every one):

``latency``
    A writer stores trials (and a running trial's reports) into a sweep's journal, the
    way the driver does, while ``sweep dashboard`` runs in its own process and headless
    Chromium shows the sweep's page: the time from a trial stored to the page showing
    it, and from a report stored to the curve drawing it (median, 90th percentile, max).
    The same for the JSON API alone (a client polling every 20 ms).

``big``
    A sweep of 1,000,000 trials (Parquet written directly, as a finished sweep leaves
    it) and one of 10,000 trials with 50-step curves (500,000 reports): the dashboard
    process's time to the first summary, the figures (and how many points they draw),
    the table, the importance fit; its CPU share and resident memory while a page-like
    client watches an unchanged sweep, and while a writer adds 500 trials a second to
    the million (with the time from stored to shown under that load).

``throughput``
    ``sweep.run`` of trivial trials on Ray, alone and with the dashboard process and a
    page-like client watching its results root, alternating (``--repeats``); trials per
    second of each and their ratio (target: no slower than 5 %).

``shots``
    The README's screenshots (``docs/dashboard-*.png``) of a demo results root.

``importance``
    On the same trials, sweep's importance (fANOVA on its numpy forest: main effect,
    total effect with its spread) and Optuna's ``get_param_importances`` (its default
    evaluator, fANOVA on scikit-learn's random forest: main effects normalised to sum to
    1), against the true variance shares of known functions (Monte Carlo on 10^6
    points): 1:4 additive, 2 of 8, a pure interaction, a categorical, a step in decades.
    Optuna's default needs scikit-learn (``pip install scikit-learn``, or put it on
    ``PYTHONPATH``); without it that column is left out.

Run by hand (a few minutes for ``all``)::

    python tests/bench/dashboard.py latency
    python tests/bench/dashboard.py big --trials 1000000 --curves 10000
    python tests/bench/dashboard.py throughput --trials 300000 --repeats 3
    PYTHONPATH=/path/to/sklearn python tests/bench/dashboard.py importance
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.bench._machine import machine  # noqa: E402
from tests.fake_sweep import FakeDriver  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ the dashboard process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dashboard:
    """``sweep dashboard ROOT`` in its own process; its CPU time and memory from /proc."""

    def __init__(self, root: str, poll: float = 1.0):
        self.port = free_port()
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sweep", "dashboard", root, "--port", str(self.port),
             "--poll", str(poll)], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.base + "/static/app.css", timeout=60):
                    break
            except OSError:
                assert self.proc.poll() is None, self.proc.stderr.read()
                assert time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.1)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=600) as r:
            return json.loads(r.read())

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK

    def memory_mib(self) -> tuple[float, float]:
        """(resident now, peak resident) in MiB."""
        status = dict(line.split(":", 1) for line in
                      Path(f"/proc/{self.proc.pid}/status").read_text().splitlines())
        return (int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class PageLike(threading.Thread):
    """Polls like the page does: the summary once a second (?since=), and on a change the
    figures, the table and the importance. Records (time, trials shown)."""

    def __init__(self, dash: Dashboard, key: str, period: float = 1.0):
        super().__init__(daemon=True)
        self.dash, self.key, self.period = dash, key, period
        self.stop = threading.Event()
        self.seen: list[tuple[float, int]] = []
        self.version = None

    def run(self) -> None:
        api = f"/api/sweeps/{self.key}"
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                s = self.dash.get(api + ("" if self.version is None else
                                         f"?since={self.version}"))
                if not s.get("same"):
                    self.dash.get(api + "/figures")
                    self.dash.get(api + "/table")
                    self.version = s["version"]
                    self.seen.append((time.monotonic(), s["trials"]))
                self.dash.get(api + "/importance")
            except OSError:
                pass
            self.stop.wait(max(0.0, self.period - (time.monotonic() - started)))


def quantiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    q = np.quantile(values, [0.5, 0.9])
    return f"median {q[0]:.2f} s, p90 {q[1]:.2f} s, max {max(values):.2f} s (n={len(values)})"


# ------------------------------------------------------------------ latency


def bench_latency(trials: int) -> None:
    from tests.cdp import Browser

    root = Path(tempfile.mkdtemp(prefix="sweep-dash-lat-"))
    driver = FakeDriver(str(root), flush_every=10**6)
    for _ in range(3):
        driver.trial(0)
    dash = Dashboard(str(root))
    rng = np.random.default_rng(0)
    try:
        shown, curve = asyncio.run(_browser_latency(dash, driver, trials, rng, Browser,
                                                    root / "profile"))
        print(f"  stored -> shown in Chromium (page polls 1 s, server looks every 1 s): "
              f"trial {quantiles(shown)}")
        print(f"  stored -> curve drawn in Chromium: {quantiles(curve)}")
        api = []
        for _ in range(trials):
            time.sleep(float(rng.uniform(0.2, 1.2)))
            n = driver.count + 1
            driver.trial(0)
            stored = time.monotonic()
            while dash.get("/api/sweeps/demo")["trials"] < n:
                time.sleep(0.02)
            api.append(time.monotonic() - stored)
        print(f"  stored -> in the JSON API (client polls every 20 ms): {quantiles(api)}")
    finally:
        dash.close()
        shutil.rmtree(root, ignore_errors=True)


async def _browser_latency(dash: Dashboard, driver: FakeDriver, trials: int,
                           rng: np.random.Generator, browser: Any, profile: Path
                           ) -> tuple[list[float], list[float]]:
    stats = "window.sweepDashboard"
    shown, curve = [], []
    async with browser(profile) as page:
        await page.goto(f"{dash.base}/sweep/demo")
        await page.wait(f"{stats} && {stats}.trials === {driver.count}", 60)
        for i in range(trials):
            await asyncio.sleep(float(rng.uniform(0.2, 1.2)))
            n = driver.count + 1
            driver.trial(0)
            stored = time.monotonic()
            await page.wait(f"{stats}.trials === {n}", 60)
            shown.append(time.monotonic() - stored)
            points = await page.eval(f"{stats}.curvePoints")
            driver.report(f"running-{i}", 0, [1, 2, 3], 0.5)
            stored = time.monotonic()
            await page.wait(f"{stats}.curvePoints >= {points + 3}", 60)
            curve.append(time.monotonic() - stored)
        problems = page.problems
    if problems:
        print(f"  page problems: {problems}")
    return shown, curve


# ------------------------------------------------------------------ a million trials


def write_big(root: str, n: int, curves_of: int = 0, steps: int = 50,
              name: str = "big") -> FakeDriver:
    """A finished sweep of ``n`` trials (``curves_of`` of them with ``steps``-step
    curves), its Parquet written in chunks of 200,000 rows as compaction leaves it."""
    import pyarrow as pa

    from sweep.store.codec import curves_schema, trials_schema
    from sweep.store.parts import ROWS_KEY, UNIQUE

    driver = FakeDriver(root, name=name, first=n, second=10)
    store = driver.store
    schema = trials_schema(store.codec.types, ["loss"]).with_metadata({ROWS_KEY: UNIQUE})
    rng = np.random.default_rng(1)
    t0 = np.datetime64("2026-01-01T00:00:00", "us")
    chunk = 200_000
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        ids = np.char.add("t", np.char.zfill(np.arange(start, start + m).astype(str), 7))
        lr = 10 ** rng.uniform(-5, 0, m)
        opt = np.array(["adam", "sgd", "rmsprop"], dtype=object)[rng.integers(0, 3, m)]
        x = rng.random((m, 3))
        loss = (0.3 * (np.log10(lr) + 2.5) ** 2 + np.select(
            [opt == "sgd", opt == "rmsprop"], [0.6, 0.2], 0.0) + 0.3 * np.sin(6 * x[:, 0]))
        status = np.where(rng.random(m) < 0.01, "failed", "ok")
        finished = t0 + (np.arange(start, start + m) * 1000).astype("timedelta64[us]")
        columns = {
            "sweep": np.full(m, name, dtype=object), "trial_id": ids.astype(object),
            "parent_id": pa.nulls(m, pa.string()), "status": status.astype(object),
            "params.epochs": np.full(m, 3), "params.lr": lr, "params.opt": opt,
            "params.x2": x[:, 0], "params.x3": x[:, 1], "params.x4": x[:, 2],
            "metrics.loss": np.where(status == "ok", loss, np.nan),
            "error": pa.array([None] * m, pa.string()), "attempts": np.ones(m, np.int64),
            "started_at": finished - np.timedelta64(5, "s"), "finished_at": finished,
            "duration_s": np.full(m, 5.0), "node": np.full(m, "10.0.0.1", dtype=object),
            "gpu_ids": np.full(m, "0", dtype=object), "step": np.full(m, steps),
        }
        arrays = [pa.array(columns[f.name], f.type) if not isinstance(columns[f.name],
                  pa.Array) else columns[f.name] for f in schema]
        store.folder.trials.write(0, pa.Table.from_arrays(arrays, schema=schema))
    if curves_of:
        cschema = curves_schema(["loss"])
        ids = np.repeat(np.char.add("t", np.char.zfill(np.arange(curves_of).astype(str), 7)),
                        steps)
        step = np.tile(np.arange(1, steps + 1), curves_of)
        base = rng.random(curves_of).repeat(steps)
        table = pa.Table.from_arrays([
            pa.array(np.full(len(ids), name, dtype=object), pa.string()),
            pa.array(ids.astype(object), pa.string()), pa.array(step, pa.int64()),
            pa.array(t0 + (step * 1_000_000).astype("timedelta64[us]"), cschema.field(
                "time").type),
            pa.array(np.arange(len(ids)), pa.int64()),  # the arrival order
            pa.array(base + 1.0 / step, pa.float64())], schema=cschema)
        for start in range(0, len(ids), 250_000):
            store.folder.curves.write(0, table.slice(start, 250_000))
    return driver


def _watch_cost(dash: Dashboard, key: str, seconds: float,
                during: Callable[[], None] | None = None) -> tuple[float, float, PageLike]:
    """CPU share (of one core) and peak RSS of the dashboard while a page-like client
    watches ``key`` for ``seconds`` (and ``during`` runs in a thread)."""
    page = PageLike(dash, key)
    page.start()
    time.sleep(2.0)  # the first read and figures, not counted
    cpu0, t0 = dash.cpu_seconds(), time.monotonic()
    worker = threading.Thread(target=during, daemon=True) if during else None
    if worker:
        worker.start()
    time.sleep(seconds)
    share = (dash.cpu_seconds() - cpu0) / (time.monotonic() - t0)
    page.stop.set()
    page.join(30)
    if worker:
        worker.join(60)
    return share, dash.memory_mib()[1], page


def bench_big(n: int, curves: int, seconds: float) -> None:
    root = tempfile.mkdtemp(prefix="sweep-dash-big-")
    try:
        t = time.perf_counter()
        big = write_big(root, n, name="big")
        write_big(root, curves, curves_of=curves, steps=50, name="curvy")
        print(f"  wrote {n:,} trials and a sweep of {curves:,} curves x 50 steps in "
              f"{time.perf_counter() - t:.1f} s")
        dash = Dashboard(root)
        for key, label in (("big", f"{n:,} trials"), ("curvy", f"{curves:,} curves")):
            t = time.perf_counter()
            s = dash.get(f"/api/sweeps/{key}")
            first = time.perf_counter() - t
            t = time.perf_counter()
            with urllib.request.urlopen(f"{dash.base}/api/sweeps/{key}/figures",
                                        timeout=600) as r:
                raw = r.read()
            figs = time.perf_counter() - t
            parsed = json.loads(raw)
            scatter = parsed["params"][0]["figure"]["layout"]["title"]["text"]
            curve_title = parsed["curves"]["layout"]["title"]["text"] if parsed["curves"] \
                else "-"
            t = time.perf_counter()
            dash.get(f"/api/sweeps/{key}/table?k=1000")
            table = time.perf_counter() - t
            t = time.perf_counter()
            while not dash.get(f"/api/sweeps/{key}/importance").get("result"):
                time.sleep(0.2)
            imp = time.perf_counter() - t
            rss, peak = dash.memory_mib()
            print(f"  [{label}] first summary {first:.1f} s ({s['trials']:,} trials); "
                  f"figures {figs:.1f} s, {len(raw) / 1e6:.1f} MB; table of 1,000 "
                  f"{table:.2f} s; importance {imp:.1f} s; RSS {rss:.0f} MiB (peak "
                  f"{peak:.0f})")
            print(f"      scatter title: {scatter.split('<br>')[-1]}")
            print(f"      curves title: {curve_title.split('<br>')[-1]}")
            share, peak, _ = _watch_cost(dash, key, seconds)
            print(f"      watched, unchanged, {seconds:.0f} s: CPU {100 * share:.1f}% of a "
                  f"core, peak RSS {peak:.0f} MiB")
        # The million, growing: 500 trials a second into the journal.
        big.store.flush_every = 10**9
        stored: list[tuple[float, int]] = []

        def grow() -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for _ in range(50):
                    big.trial(0, steps=0)
                stored.append((time.monotonic(), n + big.count))
                time.sleep(0.1)

        big.count = 0
        share, peak, page = _watch_cost(dash, "big", seconds, grow)
        lags = []
        for at, count in stored:
            later = [t for t, c in page.seen if c >= count and t >= at]
            if later:
                lags.append(later[0] - at)
        print(f"  [{n:,} trials, growing 500/s] CPU {100 * share:.1f}% of a core, peak RSS "
              f"{peak:.0f} MiB; stored -> summary shows it: {quantiles(lags)}")
        dash.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------ driver throughput


def page_process(base: str) -> None:
    """``_page BASE``: poll like the page, in a process of its own (as a browser is):
    attach to the first sweep listed, print a JSON line per version seen."""

    class Remote(Dashboard):
        def __init__(self, base: str):  # a client only: no process of its own
            self.base = base

    dash = Remote(base)
    while True:
        try:
            keys = [s["key"] for s in dash.get("/api/sweeps")["sweeps"]]
        except OSError:
            keys = []
        if keys:
            break
        time.sleep(0.2)
    page = PageLike(dash, keys[0])
    page.start()
    printed = 0
    while True:
        for at, trials in page.seen[printed:]:
            print(json.dumps({"at": at, "trials": trials}), flush=True)
        printed = len(page.seen)
        time.sleep(0.2)


def _page_poller(root: str) -> tuple[Dashboard, subprocess.Popen]:
    dash = Dashboard(root)
    page = subprocess.Popen([sys.executable, __file__, "_page", "--base", dash.base],
                            cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return dash, page


def bench_throughput(trials: int, repeats: int, cores: int) -> None:
    import ray

    import sweep
    from tests.bench.overhead import spec, trivial

    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    sweep.run(spec(trivial, 200, name="warmup"), results=tempfile.mkdtemp())
    rates: dict[str, list[float]] = {"alone": [], "watched": []}
    for r in range(repeats):
        for mode in ("alone", "watched"):
            root = tempfile.mkdtemp(prefix=f"sweep-dash-tp-{mode}-")
            dash = page = None
            cpu0 = 0.0
            if mode == "watched":
                dash, page = _page_poller(root)
                time.sleep(1.0)
                cpu0 = dash.cpu_seconds()  # its start-up not counted
            t = time.perf_counter()
            sweep.run(spec(trivial, trials, name=f"tp-{r}"), results=root)
            wall = time.perf_counter() - t
            extra = ""
            if dash is not None and page is not None:
                cpu = dash.cpu_seconds() - cpu0
                page.terminate()
                seen = [json.loads(line)["trials"] for line in page.communicate()[0].splitlines()]
                dash.close()
                extra = (f" (dashboard used {cpu:.1f} CPU-s, {100 * cpu / wall:.0f}% of a core; "
                         f"the page saw {len(seen)} versions, up to {max(seen, default=0):,} "
                         f"trials)")
            rates[mode].append(trials / wall)
            print(f"  run {r + 1} {mode:>7}: {trials:,} trials in {wall:.1f} s, "
                  f"{trials / wall:,.0f} trials/s{extra}")
            shutil.rmtree(root, ignore_errors=True)
    best = {m: max(v) for m, v in rates.items()}
    med = {m: statistics.median(v) for m, v in rates.items()}
    pairs = [100 * (w / a - 1) for a, w in zip(rates["alone"], rates["watched"])]
    print(f"  best: alone {best['alone']:,.0f}/s, watched {best['watched']:,.0f}/s "
          f"({100 * (best['watched'] / best['alone'] - 1):+.1f}%); median "
          f"{100 * (med['watched'] / med['alone'] - 1):+.1f}%; each pair: "
          + ", ".join(f"{p:+.0f}%" for p in pairs)
          + f"; spread of the runs alone: {min(rates['alone']):,.0f}-"
            f"{max(rates['alone']):,.0f}/s (target: no worse than -5%)")
    ray.shutdown()


# ------------------------------------------------------------------ importance vs Optuna


def _cases(rng: np.random.Generator) -> dict[str, tuple[dict, Callable[[dict], np.ndarray]]]:
    """name -> (parameters: name -> (kind, lo, hi | categories), f(columns))."""
    u = ("uniform", 0.0, 1.0)
    cats = ["adam", "sgd", "rmsprop", "adagrad"]
    effect = {"adam": 0.0, "sgd": 1.0, "rmsprop": 3.0, "adagrad": 0.2}
    return {
        "additive 1:4": ({"x0": u, "x1": u}, lambda c: c["x0"] + 2 * c["x1"]),
        "2 of 8": ({f"x{i}": u for i in range(8)},
                   lambda c: 2 * np.sin(3 * c["x3"]) + 8 * (c["x6"] - 0.5) ** 2),
        "pure interaction": ({f"x{i}": u for i in range(4)},
                             lambda c: (c["x0"] - 0.5) * (c["x1"] - 0.5)),
        "categorical": ({"opt": ("choice", cats), "x0": u, "x1": u},
                        lambda c: np.vectorize(effect.get)(c["opt"]) + 0.3 * c["x0"]),
        "step in decades": ({"lr": ("log", 1e-5, 1.0), "x0": u},
                            lambda c: (c["lr"] < 1e-3).astype(float) + c["x0"]),
    }


def _sample(params: dict, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for name, (kind, *args) in params.items():
        if kind == "uniform":
            out[name] = rng.uniform(args[0], args[1], n)
        elif kind == "log":
            out[name] = 10 ** rng.uniform(math.log10(args[0]), math.log10(args[1]), n)
        else:
            out[name] = np.array(args[0], dtype=object)[rng.integers(0, len(args[0]), n)]
    return out


def _truth(params: dict, f: Callable, rng: np.random.Generator, n: int = 1_000_000
           ) -> dict[str, tuple[float, float]]:
    """name -> (main effect, total effect), by Monte Carlo: main from 200 bins of each
    parameter (in decades for log ones), total by Jansen's estimator."""
    a = _sample(params, n, rng)
    b = _sample(params, n, rng)
    fa = f(a)
    var = fa.var()
    out = {}
    for name, (kind, *_) in params.items():
        x = a[name]
        if kind == "choice":
            codes = np.unique(x, return_inverse=True)[1]
        else:
            key = np.log10(x) if kind == "log" else x
            codes = np.minimum((200 * (key - key.min()) / np.ptp(key)).astype(int), 199)
        means = np.bincount(codes, fa) / np.maximum(np.bincount(codes), 1)
        weights = np.bincount(codes) / n
        main = float(weights @ (means - fa.mean()) ** 2 / var)
        mixed = dict(a)
        mixed[name] = b[name]
        total = float(np.mean((fa - f(mixed)) ** 2) / 2 / var)
        out[name] = (main, total)
    return out


def bench_importance(sizes: list[int]) -> None:
    from sweep.views.importance import importance

    try:
        import optuna
        import sklearn  # noqa: F401 - Optuna's default evaluator needs it

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        have_optuna = True
    except ImportError as exc:
        print(f"  Optuna's default evaluator is left out: {exc}")
        have_optuna = False
    import pandas as pd

    rng = np.random.default_rng(0)
    for case, (params, f) in _cases(rng).items():
        truth = _truth(params, f, rng)
        for n in sizes:
            cols = _sample(params, n, rng)
            y = f(cols)
            df = pd.DataFrame({"trial_id": [f"t{i}" for i in range(n)], "stage": 0,
                               "status": "ok", **{f"params.{k}": v for k, v in cols.items()},
                               "metrics.y": y})
            scales = {k: {"uniform": "linear", "log": "log", "choice": "categorical"}[v[0]]
                      for k, v in params.items()}
            t = time.perf_counter()
            ours = {p.name: p for p in importance(df, "y", "minimize", scales).params}
            ours_s = time.perf_counter() - t
            theirs, theirs_s = {}, float("nan")
            if have_optuna:
                theirs, theirs_s = _optuna(params, cols, y)
            norm = sum(p.main for p in ours.values()) or 1.0
            print(f"\n  [{case}, {n} trials] sweep {ours_s:.1f} s"
                  + (f", Optuna {theirs_s:.1f} s" if have_optuna else ""))
            print(f"    {'param':<6} {'true main':>9} {'true total':>10} | {'sweep main':>10} "
                  f"{'sweep total ± std':>18} {'sweep main norm.':>16} | "
                  f"{'Optuna (main, norm.)':>20}")
            for name in params:
                tm, tt = truth[name]
                p = ours.get(name)
                cells = (f"{p.main:10.3f} {p.total:10.3f} ± {p.total_std:5.3f} "
                         f"{p.main / norm:16.3f}") if p else f"{'-':>10} {'-':>18} {'-':>16}"
                opt = f"{theirs[name]:20.3f}" if name in theirs else f"{'-':>20}"
                print(f"    {name:<6} {tm:9.3f} {tt:10.3f} | {cells} | {opt}")


def _optuna(params: dict, cols: dict, y: np.ndarray) -> tuple[dict[str, float], float]:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    dists = {}
    for name, (kind, *args) in params.items():
        if kind == "choice":
            dists[name] = CategoricalDistribution(list(args[0]))
        else:
            dists[name] = FloatDistribution(args[0], args[1], log=kind == "log")
    study = optuna.create_study()
    n = len(y)
    study.add_trials([optuna.trial.create_trial(
        params={k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in cols.items()},
        distributions=dists, value=float(y[i])) for i in range(n)])
    t = time.perf_counter()
    result = optuna.importance.get_param_importances(study, normalize=True)
    return dict(result), time.perf_counter() - t


# ------------------------------------------------------------------ screenshots


def take_shots(folder: str, real_root: str | None = None) -> None:
    """The README's screenshots: a real results root when given (its first sweep is the
    one shown), beside a demo root (a finished sweep, one with an unreadable stage file,
    and without a real root a coarse-to-fine sweep with trials running), in headless
    Chromium."""
    from sweep.cli import sweep_meta
    from sweep.views.dashboard_server import DashboardServer
    from tests.cdp import Browser

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="sweep-dash-shots-"))
    roots = [str(root)]
    if real_root:
        from sweep.views.results_source import list_sweeps

        roots.insert(0, real_root)
        shown = list_sweeps(real_root)[0]
    else:
        shown = "mlp-digits"
        main = FakeDriver(str(root), name=shown, first=240, second=60, flush_every=10**6,
                          seed=3)
        main.run(first=240, second=40)
        main.store.flush_every = 10**6
        for i in range(3):  # running: reported steps, no result yet
            main.report(f"s1-running-{i}", 1, [1, 2, 3], 0.4 + 0.2 * i)
    FakeDriver(str(root), name="resnet-lr", first=24, second=8, seed=5).run(24, 8)
    old = FakeDriver(str(root), name="old-sweep", first=12, second=4, seed=7).run(12, 4)
    old.folder.write_text("stages/stage-1.json", "{truncated")
    server = DashboardServer(roots, port=0, describe=sweep_meta, poll=0.5)
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    stats = "window.sweepDashboard"

    async def shoot() -> None:
        async with Browser(root / "profile", width=1400, height=900) as page:
            await page.goto(f"{base}/")
            await page.wait(f"{stats} && {stats}.rows === 3")  # the shown one and two demos
            await page.screenshot(out / "dashboard-list.png", 1400, 420)
            await page.goto(f"{base}/sweep/{shown}")
            await page.wait(f"{stats} && {stats}.updates >= 1 && "
                            "document.querySelector('#fig-importance .main-svg')", 120)
            await asyncio.sleep(1.0)
            await page.screenshot(out / "dashboard-sweep.png", 1400, 2600)
            # A refined trial (one with a parent link) when there is one.
            child = await page.eval(
                "(Array.from(document.querySelectorAll('#trials tbody tr')).find(tr => "
                "tr.querySelector('td:last-child a')) || document.querySelector("
                "'#trials tbody tr')).dataset.trial")
            await page.goto(f"{base}/sweep/{shown}/trial/{child}")
            await page.wait(f"{stats} && {stats}.view === 'trial' && {stats}.updates >= 1 && "
                            "document.querySelector('#fig-trial-curve .main-svg')")
            await asyncio.sleep(0.5)
            await page.screenshot(out / "dashboard-trial.png", 1400, 1150)
            if page.problems:
                print(f"  page problems: {page.problems}")

    try:
        asyncio.run(shoot())
    finally:
        server.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    print(f"  screenshots in {out}: " + ", ".join(sorted(p.name for p in out.glob("*.png"))))


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("latency", "big", "throughput", "importance", "shots",
                                         "all", "_page"))
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(REPO / "docs"), help="shots: where to write")
    parser.add_argument("--root", default=None,
                        help="shots: a real results root whose first sweep is shown")
    parser.add_argument("--trials", type=int, default=None,
                        help="latency: trials stored (20); big: trials (1,000,000); "
                             "throughput: trials per run (300,000)")
    parser.add_argument("--curves", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="big: how long each watch is measured")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--sizes", default="200,1000", help="importance: trial counts")
    args = parser.parse_args(argv)
    if args.what == "_page":
        page_process(args.base)
        return 0
    print(machine(("ray", "pyarrow", "plotly", "optuna")))
    if args.what in ("latency", "all"):
        print("\n[latency]")
        bench_latency(args.trials or 20)
    if args.what in ("big", "all"):
        print("\n[big]")
        bench_big(args.trials or 1_000_000, args.curves, args.seconds)
    if args.what in ("throughput", "all"):
        print("\n[throughput]")
        bench_throughput(args.trials or 300_000, args.repeats, args.cores)
    if args.what in ("importance", "all"):
        print("\n[importance]")
        bench_importance([int(s) for s in args.sizes.split(",")])
    if args.what == "shots":
        take_shots(args.out, args.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
