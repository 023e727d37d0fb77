"""The live dashboard in real headless Chromium: trials appear and a curve grows while a
driver stores them, without a reload and without a JavaScript error; a trial's page
opens from the table. Chromium is needed (Debian package ``chromium``; ``$CHROMIUM`` for
another); where it is missing the test fails rather than skips, as the report's does.

Set ``SWEEP_DASHBOARD_SHOTS=<folder>`` to keep screenshots of the pages it visits.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from sweep.cli import sweep_meta
from sweep.views.dashboard_server import DashboardServer
from tests.cdp import Browser, chromium_binary
from tests.fake_sweep import FakeDriver

STATS = "window.sweepDashboard"


def _shots() -> Path | None:
    folder = os.environ.get("SWEEP_DASHBOARD_SHOTS")
    return Path(folder) if folder else None


async def _watch_live(tmp_path: Path) -> dict:
    driver = FakeDriver(str(tmp_path / "results"), flush_every=10**6)  # journal only
    for _ in range(4):
        driver.trial(0)
    driver.trial(0, status="failed", error="ValueError: boom <b>not html</b>")
    server = DashboardServer([str(tmp_path / "results")], port=0, describe=sweep_meta,
                             poll=0.2)
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    seen: dict = {}
    try:
        async with Browser(tmp_path / "profile") as page:
            await page.goto(f"{base}/sweep/demo")
            await page.wait(f"{STATS} && {STATS}.updates >= 1 && {STATS}.rows === 4")
            await page.eval("window.__sameDocument = 'yes'")  # gone if the page reloads
            first = await page.eval(f"JSON.stringify({STATS})")
            seen["first"] = first
            assert await page.eval("document.querySelectorAll('#trials tbody tr').length") == 4
            points = await page.eval(f"{STATS}.curvePoints")
            assert points == 5 * 5  # 5 trials x 5 steps

            # A driver stores three trials: they appear without a reload.
            stored = time.monotonic()
            for _ in range(3):
                driver.trial(0)
            await page.wait(f"{STATS}.rows === 7")
            seen["trials_shown_after_s"] = time.monotonic() - stored
            # A running trial reports steps: its curve appears, then grows.
            driver.report("s0-running", 0, [1, 2], 0.5)
            stored = time.monotonic()
            await page.wait(f"{STATS}.curvePoints === {points + 15 + 2}")
            seen["curve_shown_after_s"] = time.monotonic() - stored
            driver.report("s0-running", 0, [3, 4, 5, 6], 0.5)
            await page.wait(f"{STATS}.curvePoints === {points + 15 + 6}")
            assert await page.eval("window.__sameDocument") == "yes"
            assert page.loads == 1, "the page was reloaded"
            stages = await page.eval("document.querySelector('.stage .small').textContent")
            assert stages.startswith("8 of 40") and "1 running" in stages
            figures = await page.eval("document.querySelectorAll('.js-plotly-plot').length")
            assert figures >= 2 + 5 + 1  # best, curves, one per parameter, parcoords
            # A narrower window: the figures keep their height (they once collapsed).
            heights = ("Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => "
                       "[d.id, Math.round(d.getBoundingClientRect().height)])")
            before = await page.eval(heights)
            await page.send("Emulation.setDeviceMetricsOverride", width=900, height=700,
                            deviceScaleFactor=1, mobile=False)
            await asyncio.sleep(1.0)
            assert await page.eval(heights) == before
            assert dict(before)["fig-curves"] == 480
            await page.send("Emulation.clearDeviceMetricsOverride")
            note = "document.querySelector('#fig-importance').parentNode.parentNode.textContent"
            await page.wait(f"{note}.includes('needs 8 ranked trials (7 so far)')")
            driver.trial(0)  # the eighth: importance is fitted, and drawn without a reload
            await page.wait("document.querySelector('#fig-importance .main-svg')")
            assert await page.eval(f"{note}.includes('fANOVA on 8 of 8 ranked trials')")
            if _shots():
                await page.screenshot(_shots() / "dashboard-sweep.png", height=2400)

            # Sort the table by a column, then open a trial's page from it.
            await page.eval("document.querySelectorAll('#trials th')[3].click()")
            order = await page.eval("Array.from(document.querySelectorAll('#trials tbody "
                                    "tr td:nth-child(4)')).map(td => Number(td.textContent))")
            assert order == sorted(order) and len(order) == 8
            tid = await page.eval("document.querySelector('#trials tbody a').textContent")
            await page.eval("document.querySelector('#trials tbody a').click()")
            await page.wait(f"location.pathname.endsWith('/trial/{tid}') && {STATS} && "
                            f"{STATS}.view === 'trial' && {STATS}.updates >= 1")
            heading = await page.eval("document.querySelector('h1').textContent")
            assert heading.startswith(f"trial {tid}")
            await page.wait("document.querySelector('#fig-trial-curve .main-svg')")
            params = await page.eval("Array.from(document.querySelectorAll('dl.kv dt'))"
                                     ".map(d => d.textContent)")
            assert {"lr", "opt", "x2", "loss", "node", "gpu_ids", "attempts"} <= set(params)
            if _shots():
                await page.screenshot(_shots() / "dashboard-trial.png", height=1200)

            # A failed trial's page shows its error as text.
            await page.goto(f"{base}/sweep/demo/trial/s0-t0004")
            await page.wait(f"{STATS} && {STATS}.view === 'trial' && {STATS}.updates >= 1")
            error = await page.eval("document.querySelector('#trial-error').textContent")
            assert error == "ValueError: boom <b>not html</b>"
            assert await page.eval("document.querySelectorAll('#trial-error b').length") == 0

            # The list of sweeps.
            await page.goto(f"{base}/")
            await page.wait(f"{STATS} && {STATS}.view === 'list' && {STATS}.rows === 1")
            assert await page.eval("document.querySelector('#sweeps a').textContent") == "demo"
            if _shots():
                await page.screenshot(_shots() / "dashboard-list.png", height=500)
            await asyncio.sleep(0.5)
            assert page.problems == [], page.problems
    finally:
        server.shutdown()
    return seen


def test_trials_appear_and_curves_grow_live_in_chromium(tmp_path: Path) -> None:
    if chromium_binary() is None:
        pytest.fail("Chromium is needed for the dashboard's browser test and was not found "
                    "(/usr/bin/chromium, or chromium on PATH, or $CHROMIUM). Install it: "
                    "apt-get update && apt-get install -y chromium")
    seen = asyncio.run(_watch_live(tmp_path))
    print(f"\ntrials shown {seen['trials_shown_after_s']:.2f} s after they were stored; "
          f"a new curve {seen['curve_shown_after_s']:.2f} s after")


SPEC = """\
name: live
objective: tests.objectives:curve
metric: {name: loss, goal: minimize}
parameters:
  x: {distribution: uniform, min: 0.1, max: 1.0}
  steps: {value: 8}
  pause: {value: 0.4}
stages:
  - {plan: random, trials: 6, seed: 0}
"""


async def _watch_a_real_sweep(tmp_path: Path) -> None:
    import subprocess
    import sys

    results = tmp_path / "results"
    results.mkdir()
    spec = tmp_path / "live.yaml"
    spec.write_text(SPEC)
    server = DashboardServer([str(results)], port=0, describe=sweep_meta, poll=0.2)
    server.start()
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo), RAY_AUTH_MODE=os.environ.get(
        "RAY_AUTH_MODE", "token"))
    run = subprocess.Popen([sys.executable, "-m", "sweep", "run", str(spec), "--results",
                            str(results), "--max-concurrent", "2", "--quiet"], cwd=repo,
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        async with Browser(tmp_path / "profile") as page:
            # The page opens before the sweep has stored anything, and follows it.
            await page.goto(f"http://127.0.0.1:{server.port}/sweep/live")
            await page.wait(f"{STATS} && {STATS}.view === 'sweep'")
            await page.eval("window.__sameDocument = 'yes'")
            first = await page.wait(f"{STATS}.curvePoints > 0 && {STATS}.curvePoints", 180)
            await page.wait(f"{STATS}.curvePoints > {first}", 60)  # a curve grows
            await page.wait(f"{STATS}.trials >= 1", 120)  # trials appear
            await page.wait(f"{STATS}.trials === 6 && {STATS}.curvePoints === 48", 180)
            assert await page.eval("window.__sameDocument") == "yes" and page.loads == 1
            await page.eval("document.querySelector('#trials tbody a').click()")
            await page.wait(f"{STATS} && {STATS}.view === 'trial' && {STATS}.updates >= 1")
            await page.wait("document.querySelector('#fig-trial-curve .main-svg')")
            assert page.problems == [], page.problems
        assert run.wait(120) == 0, run.stderr.read()[-3000:]
    finally:
        if run.poll() is None:
            run.kill()
        server.shutdown()


@pytest.mark.slow
def test_a_real_sweep_run_watched_in_chromium(tmp_path: Path) -> None:
    """`sweep run` on Ray (a subprocess) while the page is open: its curves grow and its
    trials appear as the driver stores them."""
    if chromium_binary() is None:
        pytest.fail("Chromium is needed (apt-get install -y chromium, or $CHROMIUM)")
    asyncio.run(_watch_a_real_sweep(tmp_path))
