"""Tests for sweep.report: the content of the HTML and how it renders in headless Chromium.

The browser test needs Chromium (Debian package ``chromium``; CI installs it). Where it is
missing the test fails rather than skips. Set ``CHROMIUM=/path/to/chrome`` to use another.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sweep.views.html import build_report, write_report

SCALES = {
    "lr": "log",
    "optimizer": "categorical",
    "dropout": "categorical",
    "hidden": "linear",
    "epochs": "constant",
}
PLOTTED = ["lr", "optimizer", "dropout", "hidden"]
INSIGHTS = 2  # the best-so-far and importance figures of a sweep with ranked trials
OPTIMIZERS = ["adam", "sgd", "rmsprop"]
HIDDEN = [32, 64, 128, 256]
TITLE = 'Sweep <script>alert("x")</script> & co'
SWEEP_NAME = "demo<&>"
FAILED_IDS = ["s0-f0", "s0-f1"]
NAN_ID = "s0-nan"


def _loss(lr: float, opt: str, dropout: bool, hidden: int, rng: np.random.Generator) -> float:
    return float(
        (math.log10(lr) + 2.5) ** 2
        + {"adam": 0.0, "sgd": 0.4, "rmsprop": 0.2}[opt]
        + (0.1 if dropout else 0.0)
        + 0.05 * abs(math.log2(hidden / 128))
        + rng.normal(0, 0.02)
    )


def _row(stage: int, tid: str, parent: str | None, lr: float, opt: str, dropout: bool,
         hidden: int, rng: np.random.Generator, start: pd.Timestamp) -> dict:
    loss = _loss(lr, opt, dropout, hidden, rng)
    return {
        "sweep": SWEEP_NAME, "stage": stage, "trial_id": tid, "parent_id": parent,
        "status": "ok", "params.lr": lr, "params.optimizer": opt, "params.dropout": dropout,
        "params.hidden": hidden, "params.epochs": 5, "metrics.loss": loss,
        "metrics.accuracy": 1.0 / (1.0 + loss), "error": None, "attempts": 1,
        "started_at": start, "finished_at": start + pd.Timedelta(seconds=30),
        "duration_s": 30.0, "node": "node-1", "gpu_ids": "0",
    }


def make_results() -> tuple[pd.DataFrame, list[dict]]:
    """A two-stage sweep: 40 coarse random trials, then 2 boxes x 10 fine trials."""
    rng = np.random.default_rng(7)
    t0 = pd.Timestamp("2024-05-01 12:00:00", tz="UTC")
    rows = []
    for i in range(40):
        rows.append(_row(
            0, f"s0-t{i:03d}", None, float(10 ** rng.uniform(-4, 0)),
            str(rng.choice(OPTIMIZERS)), bool(rng.integers(2)), int(rng.choice(HIDDEN)),
            rng, t0 + pd.Timedelta(seconds=10 * i),
        ))
    for tid in FAILED_IDS:
        row = _row(0, tid, None, 0.5, "sgd", False, 64, rng, t0)
        row.update({"status": "failed", "metrics.loss": np.nan, "metrics.accuracy": np.nan,
                    "error": "RuntimeError: CUDA out of memory <oops>", "attempts": 3})
        rows.append(row)
    row = _row(0, NAN_ID, None, 0.9, "adam", True, 32, rng, t0)
    row.update({"metrics.loss": np.nan, "metrics.accuracy": np.nan})
    rows.append(row)
    row = _row(0, "s0-inf", None, 0.8, "adam", True, 32, rng, t0)
    row.update({"metrics.loss": np.inf})
    rows.append(row)

    coarse = pd.DataFrame(rows)
    seeds = coarse[coarse["status"] == "ok"].sort_values("metrics.loss").head(2)
    boxes = []
    for k, (_, seed) in enumerate(seeds.iterrows()):
        lo, hi = max(seed["params.lr"] / 4, 1e-4), min(seed["params.lr"] * 4, 1.0)
        hlo, hhi = seed["params.hidden"] / 2, seed["params.hidden"] * 2
        boxes.append({
            "stage": 1, "anchor": seed["trial_id"],
            "bounds": {"lr": [lo, hi], "hidden": [hlo, hhi]},
            "categories": {"optimizer": [seed["params.optimizer"]]},
        })
        for j in range(10):
            rows.append(_row(
                1, f"s1-b{k}-t{j:02d}", seed["trial_id"], float(10 ** rng.uniform(
                    math.log10(lo), math.log10(hi))), seed["params.optimizer"],
                bool(rng.integers(2)), int(rng.integers(hlo, hhi + 1)), rng,
                t0 + pd.Timedelta(hours=1, seconds=10 * j),
            ))
    return pd.DataFrame(rows), boxes


@pytest.fixture(scope="module")
def results() -> tuple[pd.DataFrame, list[dict]]:
    return make_results()


@pytest.fixture(scope="module")
def report(results: tuple[pd.DataFrame, list[dict]]) -> str:
    df, boxes = results
    return build_report(df, metric="loss", goal="minimize", scales=SCALES, boxes=boxes,
                        title=TITLE)


def _sections(text: str) -> dict[str, str]:
    """data-param -> that parameter's plot section (HTML and figure JSON)."""
    found = re.findall(
        r'<section class="param-plot" data-param="([^"]*)"[^>]*>(.*?)</section>', text, re.S
    )
    return {html.unescape(name): body for name, body in found}


def _figure(text: str, div_id: str) -> tuple[list[dict], dict]:
    """The data (traces) and layout that ``Plotly.newPlot`` draws in ``div_id``."""
    m = re.search(r"Plotly\.newPlot\(\s*" + re.escape(json.dumps(div_id)) + r",\s*", text)
    assert m is not None, f"no figure {div_id}"
    decoder = json.JSONDecoder()
    data, end = decoder.raw_decode(text, m.end())
    layout, _ = decoder.raw_decode(text, re.compile(r",\s*").match(text, end).end())
    return data, layout


def _values(array: object) -> np.ndarray:
    """A figure's array: a JSON list, or plotly's typed array {"dtype", "bdata"}."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
    return np.asarray(array, dtype=object)


# --------------------------------------------------------------------------- content


def test_report_is_self_contained(report: str) -> None:
    assert report.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script[^>]*\bsrc\s*=", report, re.I), "scripts must be inline"
    assert not re.search(r"<link[^>]*\bhref\s*=\s*[\"']?https?:", report, re.I)
    assert report.count("* plotly.js v") == 1, "plotly.js must be embedded exactly once"
    # + parallel coordinates, best so far, importance
    assert report.count("Plotly.newPlot(") == len(PLOTTED) + 1 + INSIGHTS


def test_user_strings_are_escaped(report: str) -> None:
    assert "<script>alert" not in report
    assert html.escape(TITLE) in report
    assert f"<title>{html.escape(TITLE)}</title>" in report
    assert "demo<&>" not in report and "demo&lt;&amp;&gt;" in report
    assert "<oops>" not in report and "&lt;oops&gt;" in report


def test_summary_and_tables(report: str, results: tuple[pd.DataFrame, list[dict]]) -> None:
    df, _ = results
    ok = df[(df["status"] == "ok") & np.isfinite(df["metrics.loss"])]
    best = ok.sort_values("metrics.loss").iloc[0]
    assert f"Best trial: <b>{best['trial_id']}</b>" in report
    assert "Trials by stage and status" in report
    assert "Best trial per stage" in report and "Top 10" in report
    top = re.search(r"<h2>Top 10</h2>.*?<tbody>(.*?)</tbody>", report, re.S)
    assert top is not None and top.group(1).count("<tr>") == 10
    # Not-ranked trials are listed; failed ones with their error.
    assert "Not ranked (2)" in report and NAN_ID in report and "s0-inf" in report
    assert "Failed or timed out (2)" in report
    assert "CUDA out of memory" in report
    assert "epochs=5" in report  # constants are shown in the summary


def test_each_stage_shows_its_own_constants(results: tuple[pd.DataFrame, list[dict]]
                                            ) -> None:
    # Stage 1 fixes epochs=15 where stage 0 ran the spec's 5: the header says both.
    df, boxes = results
    df = df.assign(**{"params.epochs": np.where(df["stage"] == 1, 15, 5)})
    text = build_report(df, metric="loss", goal="minimize", scales=SCALES, boxes=boxes)
    assert "epochs=5 (stage 0), 15 (stage 1)" in text
    assert "epochs=5," not in text and "epochs=5<" not in text
    three = pd.concat([df, df[df["stage"] == 1].assign(
        stage=2, trial_id=lambda t: t["trial_id"] + "-2")])
    text = build_report(three, metric="loss", goal="minimize", scales=SCALES)
    assert "epochs=5 (stage 0), 15 (stages 1, 2)" in text


def test_the_report_command_shows_each_stages_constants(tmp_path: Path) -> None:
    from sweep.cli import main
    from tests.fake_sweep import FakeDriver

    FakeDriver(str(tmp_path / "results")).run(first=12, second=4)  # epochs 3, then 15
    out = tmp_path / "r.html"
    assert main(["report", str(tmp_path / "results" / "demo"), "-o", str(out)]) == 0
    assert "epochs=3 (stage 0), 15 (stage 1)" in out.read_text()


def test_every_param_has_a_plot_with_the_right_axis(report: str) -> None:
    sections = _sections(report)
    assert sorted(sections) == sorted(PLOTTED), "one plot per non-constant parameter"
    assert '"type":"log"' in sections["lr"]
    for name in ("optimizer", "dropout"):
        assert '"type":"category"' in sections[name]
        assert '"type":"log"' not in sections[name]
    assert '"True"' in sections["dropout"] and '"False"' in sections["dropout"]
    assert '"type":"linear"' in sections["hidden"]
    # Refine boxes: two shaded rects on lr and hidden, one per chosen optimizer band.
    assert sections["lr"].count('"type":"rect"') == 2
    assert sections["hidden"].count('"type":"rect"') == 2
    assert 1 <= sections["optimizer"].count('"type":"rect"') <= 2
    assert sections["dropout"].count('"type":"rect"') == 0
    for body in sections.values():
        assert "refine anchors" in body
        assert "stage 0" in body and "stage 1" in body
        for tid in [*FAILED_IDS, NAN_ID, "s0-inf"]:
            assert f'"{tid}"' not in body, f"{tid} must not be plotted"


def test_parallel_coordinates(report: str) -> None:
    m = re.search(r'<section class="parcoords">(.*?)</section>', report, re.S)
    assert m is not None
    body = m.group(1)
    assert '"type":"parcoords"' in body
    assert "log10(lr)" in body
    assert '"ticktext":["adam","rmsprop","sgd"]' in body
    assert '"ticktext":["False","True"]' in body


def test_best_so_far(report: str, results: tuple[pd.DataFrame, list[dict]]) -> None:
    df, _ = results
    data, layout = _figure(report, "sweep-best")
    ok = df[(df["status"] == "ok") & np.isfinite(df["metrics.loss"])]
    by_time = [t for t in data if t["meta"] == "time"]
    assert [t["name"] for t in by_time] == ["all stages", "stage 0", "stage 1"]
    assert all(t["visible"] for t in by_time)
    assert not any(t["visible"] for t in data if t["meta"] == "count")
    for trace, rows in zip(by_time, [ok, ok[ok.stage == 0], ok[ok.stage == 1]]):
        y = _values(trace["y"]).astype(float)
        assert y[-1] == rows["metrics.loss"].min()  # ends at the best
        assert (np.diff(y) <= 0).all()  # never gets worse
        in_order = rows.sort_values("finished_at")["metrics.loss"].cummin()
        assert sorted(set(y)) == sorted(set(in_order))  # a point at each improvement
    counts = [t for t in data if t["meta"] == "count" and t["name"] == "all stages"]
    assert _values(counts[0]["x"]).astype(int)[-1] == len(df)  # every trial counted
    labels = [b["label"] for b in layout["updatemenus"][0]["buttons"]]
    assert labels == ["by wall time", "by trials finished"]


def test_importance_section(report: str) -> None:
    assert "<h2>Parameter importance</h2>" in report
    data, layout = _figure(report, "sweep-importance")
    total, alone = data
    names = list(total["y"])
    assert sorted(n.replace("  (log)", "") for n in names) == sorted(PLOTTED)
    assert "lr  (log)" in names
    # _loss: lr (in decades) matters most, then the optimizer; most important on top.
    assert names[-1] == "lr  (log)" and names[-2] == "optimizer"
    tot, main = _values(total["x"]).astype(float), _values(alone["x"]).astype(float)
    assert (tot + 1e-9 >= main).all() and tot[-1] > 50
    assert len(_values(total["error_x"]["array"])) == len(PLOTTED)
    assert "resamples of 60 trials" in layout["title"]["text"]


def test_importance_can_be_left_out(results: tuple[pd.DataFrame, list[dict]]) -> None:
    df, _ = results
    text = build_report(df, metric="loss", goal="minimize", scales=SCALES, importance=False)
    assert "Parameter importance" not in text and "sweep-importance" not in text
    assert "sweep-best" in text


def test_empty_table() -> None:
    text = build_report(pd.DataFrame(), metric="loss", goal="minimize", scales={})
    assert "The results table is empty" in text
    assert "Plotly.newPlot" not in text and "plotly.js v" not in text


def test_all_failed(results: tuple[pd.DataFrame, list[dict]]) -> None:
    df, _ = results
    failed = df[df["trial_id"].isin(FAILED_IDS)]
    text = build_report(failed, metric="loss", goal="minimize", scales=SCALES)
    assert "All 2 trials failed" in text
    assert "Plotly.newPlot" not in text
    assert "CUDA out of memory" in text


def test_single_stage_maximize_and_inferred_scales(
    results: tuple[pd.DataFrame, list[dict]],
) -> None:
    df, _ = results
    coarse = df[df["stage"] == 0].drop(columns=["params.epochs"])
    text = build_report(coarse, metric="metrics.accuracy", goal="maximize", scales={})
    assert sorted(_sections(text)) == sorted(PLOTTED)
    ok = coarse[(coarse["status"] == "ok") & np.isfinite(coarse["metrics.accuracy"])]
    best = ok.sort_values("metrics.accuracy").iloc[-1]
    assert f"Best trial: <b>{best['trial_id']}</b>" in text
    assert '"type":"log"' not in text.split("<h2>Parallel coordinates</h2>")[0].split(
        "<h2>Metric against each parameter</h2>")[1]


def test_missing_metric_column_is_noted(results: tuple[pd.DataFrame, list[dict]]) -> None:
    df, _ = results
    text = build_report(df, metric="nope", goal="minimize", scales=SCALES)
    assert "no column &#x27;metrics.nope&#x27;" in text
    assert "No trial has a finite nope" in text


def test_bad_arguments(results: tuple[pd.DataFrame, list[dict]]) -> None:
    df, _ = results
    with pytest.raises(ValueError, match="goal"):
        build_report(df, metric="loss", goal="lowest", scales=SCALES)
    with pytest.raises(ValueError, match="scales"):
        build_report(df, metric="loss", goal="minimize", scales={"lr": "exp"})


def test_missing_plotly_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    with pytest.raises(RuntimeError, match=re.escape("pip install 'sweep[report]'")):
        build_report(pd.DataFrame(), metric="loss", goal="minimize", scales={})


def test_write_report_is_atomic(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "report.html"
    write_report("<p>one</p>", out)
    write_report("<p>two \u00e9</p>", out)
    assert out.read_text(encoding="utf-8") == "<p>two \u00e9</p>"
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]


# --------------------------------------------------------------------------- curves

STOPPED_IDS = [f"s0-t{i:03d}" for i in range(5)]
RUNGS = [
    {"bracket": 0, "step": 3, "cutoff": 0.5, "trials": 40},
    {"bracket": 0, "step": 9, "cutoff": 0.3, "trials": 12},
    {"bracket": 1, "step": 9, "cutoff": None, "trials": 0},
    {"bracket": 1, "step": 500, "cutoff": 0.1, "trials": 1},  # beyond every curve
]


def make_curves(df: pd.DataFrame, last_step: int = 10) -> pd.DataFrame:
    """Each ok or stopped trial reports ``loss`` at steps 1..10 (a stopped one up to 3),
    falling towards its final value."""
    rows = []
    t0 = pd.Timestamp("2024-05-01 12:00:00", tz="UTC")
    for _, trial in df[df["status"].isin(["ok", "stopped"])].iterrows():
        final = trial["metrics.loss"] if np.isfinite(trial["metrics.loss"]) else 1.0
        end = 3 if trial["status"] == "stopped" else last_step
        for step in range(1, end + 1):
            rows.append({"sweep": trial["sweep"], "stage": trial["stage"],
                         "trial_id": trial["trial_id"], "step": step,
                         "time": t0 + pd.Timedelta(seconds=step),
                         "metrics.loss": final + 1.0 / step,
                         "metrics.accuracy": 1.0 / (1.0 + final + 1.0 / step)})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def with_stops(results: tuple[pd.DataFrame, list[dict]]) -> pd.DataFrame:
    df, _ = results
    df = df.copy()
    df.loc[df["trial_id"].isin(STOPPED_IDS), "status"] = "stopped"
    df["step"] = np.where(df["status"] == "stopped", 3, 10)
    return df


@pytest.fixture(scope="module")
def curves_report(with_stops: pd.DataFrame, results: tuple[pd.DataFrame, list[dict]]) -> str:
    _, boxes = results
    return build_report(with_stops, metric="loss", goal="minimize", scales=SCALES,
                        boxes=boxes, title=TITLE, curves=make_curves(with_stops), rungs=RUNGS)


def test_learning_curves(curves_report: str, with_stops: pd.DataFrame) -> None:
    assert "<h2>Learning curves</h2>" in curves_report
    assert curves_report.count("Plotly.newPlot(") == len(PLOTTED) + 2 + INSIGHTS
    data, layout = _figure(curves_report, "sweep-curves")
    lines = [t for t in data if t["name"].startswith("stage ")]
    with_curve = with_stops[with_stops["status"].isin(["ok", "stopped"])]
    assert len(lines) == len(with_curve), "one line per trial with a curve"
    faded = [t for t in lines if t["opacity"] < 0.5]
    assert len(faded) == len(STOPPED_IDS)
    assert all("stopped early" in t["name"] for t in faded)
    assert all(t["opacity"] >= 0.8 for t in lines if t not in faded)
    assert {re.search(r"trial ([^<]+)<br>", t["hovertemplate"])[1] for t in faded} == set(
        STOPPED_IDS)
    assert all(len(_values(t["x"])) == 3 for t in faded)
    assert "1 of" not in layout["title"]["text"]  # nothing was left out
    # Rungs: a dotted line at steps 3 and 9 (not 500: no curve gets there), cutoff marks.
    rung_lines = [s for s in layout.get("shapes", []) if s["type"] == "line"]
    assert sorted(s["x0"] for s in rung_lines) == [3, 9]
    assert all(s["line"]["dash"] == "dot" for s in rung_lines)
    (marks,) = [t for t in data if t["name"] == "rung cutoffs"]
    assert sorted(_values(marks["y"]).astype(float)) == [0.3, 0.5]
    assert any("cutoff 0.5 (40 trials)" in h for h in marks["hovertext"])


def test_stopped_trials_are_counted_not_ranked(curves_report: str) -> None:
    assert "5 stopped early" in curves_report
    assert "<th>stopped</th>" in curves_report  # a column of the counts table
    assert "<h2>Stopped early (5)</h2>" in curves_report
    top = re.search(r"<h2>Top 10</h2>.*?<tbody>(.*?)</tbody>", curves_report, re.S)
    assert top is not None
    assert not any(tid in top.group(1) for tid in STOPPED_IDS)
    for name, body in _sections(curves_report).items():
        for tid in STOPPED_IDS:
            assert f'"{tid}"' not in body, f"stopped {tid} plotted against {name}"


def test_many_curves_are_sampled(with_stops: pd.DataFrame) -> None:
    rng = np.random.default_rng(1)
    n = 1000
    df = pd.DataFrame({"sweep": "many", "stage": 0, "trial_id": [f"t{i:04d}" for i in range(n)],
                       "status": "ok", "params.lr": 10 ** rng.uniform(-4, 0, n),
                       "metrics.loss": rng.random(n)})
    steps = np.tile(np.arange(1, 6), n)
    curves = pd.DataFrame({"sweep": "many", "stage": 0, "trial_id": np.repeat(df.trial_id, 5),
                           "step": steps, "time": pd.Timestamp("2024-01-01", tz="UTC"),
                           "metrics.loss": np.repeat(df["metrics.loss"], 5) + 1 / steps})
    text = build_report(df, metric="loss", goal="minimize", scales={"lr": "log"},
                        curves=curves)
    data, layout = _figure(text, "sweep-curves")
    assert len(data) == 300
    assert "300 of 1,000 trials&#x27; curves shown" in layout["title"]["text"]
    drawn = {re.search(r"trial ([^<]+)<br>", t["hovertemplate"])[1] for t in data}
    best = df.sort_values("metrics.loss")["trial_id"].head(100)
    assert set(best) <= drawn, "the best trials' curves are always drawn"


def test_no_or_empty_curves(results: tuple[pd.DataFrame, list[dict]],
                            with_stops: pd.DataFrame) -> None:
    df, boxes = results
    empty = pd.DataFrame(columns=["sweep", "stage", "trial_id", "step", "time"])
    for curves in (None, empty, empty.assign(**{"metrics.loss": []})):
        text = build_report(df, metric="loss", goal="minimize", scales=SCALES, boxes=boxes,
                            curves=curves, rungs=RUNGS)
        assert "Learning curves" not in text and "sweep-curves" not in text
        assert text.count("Plotly.newPlot(") == len(PLOTTED) + 1 + INSIGHTS
    other = make_curves(with_stops).drop(columns=["metrics.loss"])
    text = build_report(df, metric="loss", goal="minimize", scales=SCALES, curves=other)
    assert "Learning curves" not in text
    assert "the curves table has no column &#x27;metrics.loss&#x27;" in text


# --------------------------------------------------------------------------- no metric


@pytest.fixture(scope="module")
def no_metric_report(with_stops: pd.DataFrame) -> str:
    df = with_stops.drop(columns=["metrics.loss"]).copy()
    # Finish times in reverse row order, so "the order they finished" is visible.
    df["finished_at"] = df["finished_at"].max() - pd.to_timedelta(np.arange(len(df)), "s")
    return build_report(df, metric=None, scales=SCALES, title=TITLE,
                        curves=make_curves(with_stops))


def test_no_metric_report(no_metric_report: str, with_stops: pd.DataFrame) -> None:
    text = no_metric_report
    assert "This sweep has no metric, so nothing is ranked" in text
    assert "none: the sweep has no metric" in text
    assert "Best trial" not in text and "Top 10" not in text and "Not ranked" not in text
    table = re.search(r"<h2>Trials in the order they finished \((\d+)\)</h2>.*?<tbody>(.*?)"
                      r"</tbody>", text, re.S)
    assert table is not None and int(table.group(1)) == len(with_stops)
    ids = re.findall(r"<tr><td>\d+</td><td>([^<\s]+)", table.group(2))
    assert ids == list(with_stops["trial_id"])[::-1]
    sections = _sections(text)
    assert sorted(sections) == sorted(PLOTTED)
    assert '"type":"bar"' in sections["lr"] and "log10" not in sections["optimizer"]
    assert '"categoryarray":["adam","rmsprop","sgd"]' in sections["optimizer"]
    assert '<section class="parcoords">' in text and "coloured by stage" in text
    # The curves are drawn for the first metric the curves table has.
    assert "<h2>Learning curves</h2>" in text and "curves of loss" in text
    assert "Stopped early (5)" in text and "Failed or timed out (2)" in text


def test_no_metric_without_params_or_metrics() -> None:
    df = pd.DataFrame({"trial_id": ["a", "b", "c"], "status": ["ok", "stopped", "failed"],
                       "params.x": [1, 1, 1]})
    text = build_report(df, metric=None, scales={})
    assert "nothing is ranked" in text and "No parameter varies" in text
    assert "x=1" in text  # a constant


# --------------------------------------------------------------------------- a million


def make_large(n: int, seed: int = 3) -> pd.DataFrame:
    """``n`` finished trials over two stages, built with numpy (no Ray)."""
    rng = np.random.default_rng(seed)
    lr = 10 ** rng.uniform(-5, 0, n)
    dropout = rng.uniform(0, 0.5, n)
    return pd.DataFrame({
        "sweep": "big", "stage": (np.arange(n) >= n * 0.8).astype(np.int64),
        "trial_id": np.char.add("t", np.char.zfill(np.arange(n).astype(str), 7)),
        "parent_id": None, "status": "ok", "params.lr": lr,
        "params.optimizer": np.array(OPTIMIZERS, dtype=object)[rng.integers(0, 3, n)],
        "params.hidden": rng.choice(HIDDEN, n), "params.dropout": dropout,
        "params.epochs": 5,
        "metrics.loss": (np.log10(lr) + 2.5) ** 2 + dropout + rng.normal(0, 0.05, n),
        "finished_at": pd.Timestamp("2024-01-01", tz="UTC")
        + pd.to_timedelta(np.arange(n), unit="s"),
    })


def test_a_million_trials_are_sampled() -> None:
    n, shown = 1_000_000, 20_000
    df = make_large(n)
    scales = {"lr": "log", "optimizer": "categorical", "hidden": "linear",
              "dropout": "linear", "epochs": "constant"}
    started = time.perf_counter()
    text = build_report(df, metric="loss", goal="minimize", scales=scales)
    took = time.perf_counter() - started
    print(f"\n1,000,000-row report: {took:.1f} s, {len(text.encode()) / 1e6:.1f} MB")
    assert len(text.encode()) < 20_000_000
    best = df.sort_values(["metrics.loss", "trial_id"])["trial_id"].head(1000)
    for i, name in enumerate(["lr", "optimizer", "hidden", "dropout"]):
        data, layout = _figure(text, f"sweep-param-{i}")
        assert sum(len(_values(t["y"])) for t in data) == shown, name
        assert f"{shown:,} of {n:,} trials shown" in layout["title"]["text"]
        drawn = {tid for t in data for tid in t["customdata"]}
        assert set(best) <= drawn, "the best 1,000 are always drawn"
    data, layout = _figure(text, "sweep-parcoords")
    assert {len(_values(d["values"])) for d in data[0]["dimensions"]} == {shown}
    assert f"{shown:,} of {n:,} trials shown" in layout["title"]["text"]

    started = time.perf_counter()
    text = build_report(df, metric=None, scales=scales)
    print(f"1,000,000-row report without a metric: {time.perf_counter() - started:.1f} s, "
          f"{len(text.encode()) / 1e6:.1f} MB")
    assert len(text.encode()) < 20_000_000
    data, layout = _figure(text, "sweep-parcoords")
    assert {len(_values(d["values"])) for d in data[0]["dimensions"]} == {shown}
    assert f"{shown:,} of {n:,} trials shown (a uniform sample)" in layout["title"]["text"]
    data, _ = _figure(text, "sweep-param-0")  # lr: histograms over every trial
    assert sum(int(_values(t["y"]).astype(int).sum()) for t in data) == n


# --------------------------------------------------------------------------- browser

# Recorded by the page itself and written into the DOM for --dump-dom to read back.
_PROBE = """<script>
(function () {
  var errors = [];
  window.addEventListener("error", function (e) {
    var el = e.target;
    if (el && el !== window) {  // a <script>, <link> or <img> that failed to load
      errors.push("failed to load: " + (el.src || el.href || el.tagName));
    } else {
      errors.push("error: " + e.message + " @ " + (e.filename || "") + ":" + (e.lineno || 0));
    }
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    errors.push("unhandled rejection: " + (e.reason && e.reason.stack || e.reason));
  });
  var consoleError = console.error;
  console.error = function () {
    errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    return consoleError.apply(console, arguments);
  };
  window.addEventListener("load", function () {
    setTimeout(function () {
      var figs = Array.prototype.map.call(
        document.querySelectorAll(".plotly-graph-div"), function (d) {
          return {
            id: d.id,
            mainSvg: d.querySelectorAll("svg.main-svg").length,
            traces: (d._fullData || []).length,
            points: d.querySelectorAll(".scatterlayer .point").length,
            bars: d.querySelectorAll(".barlayer .point").length,
            rects: d.querySelectorAll(".shapelayer path").length,
            parcoordsAxes: d.querySelectorAll(".parcoords .y-axis").length,
            canvases: d.querySelectorAll("canvas").length
          };
        });
      // Offline: nothing may be fetched from anywhere but the file itself.
      performance.getEntriesByType("resource").forEach(function (r) {
        if (!/^(file|data|blob):/.test(r.name)) { errors.push("network request: " + r.name); }
      });
      var out = document.createElement("pre");
      out.id = "sweep-probe";
      out.textContent = JSON.stringify({errors: errors, figures: figs});
      document.body.appendChild(out);
    }, 1000);
  });
})();
</script>"""

# A console message from web content, as Chromium logs it with --enable-logging=stderr:
#   [pid:tid:MMDD/HHMMSS.us:INFO:CONSOLE:12] "msg", source: file:///x.html (12)
# (older builds: ...:INFO:CONSOLE(12)] ...). Chromium's own noise (dbus, gpu, sandbox
# warnings) never carries the CONSOLE tag, so it is ignored.
_CONSOLE_RE = re.compile(
    r'^\[[^\]]*:(?P<level>[A-Z]+):CONSOLE[:(]\d+\)?\] "(?P<msg>.*)", source: (?P<src>\S*)'
)
_BAD_CONSOLE = re.compile(
    r"^Uncaught|Failed to load resource|net::ERR_|WebGL|Refused to|Not allowed to load"
)
# The GL driver's performance hints (parcoords reads pixels back for hover picking).
_BENIGN_CONSOLE = re.compile(r"GL Driver Message \([^,]*, Performance,")


def _chromium() -> str:
    candidates = [os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                  shutil.which("chromium-browser"), shutil.which("google-chrome")]
    for c in candidates:
        if c and os.path.exists(c):
            return c
    pytest.fail(
        "Chromium is needed for the report rendering test and was not found "
        "(/usr/bin/chromium, or chromium/chromium-browser/google-chrome on PATH, or "
        "$CHROMIUM). Install it: apt-get update && apt-get install -y chromium"
    )


def _run_chromium(binary: str, url: str, profile: Path, action: list[str]) -> tuple[str, str]:
    cmd = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
        "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-extensions",
        "--disable-dev-shm-usage", "--mute-audio",
        # Any network access fails loudly (the report must work offline).
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
        "--virtual-time-budget=10000", "--window-size=1400,2400", "--hide-scrollbars",
        *action, url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    return proc.stdout, proc.stderr


def _page_console_problems(stderr: str) -> list[str]:
    problems = []
    for line in stderr.splitlines():
        m = _CONSOLE_RE.match(line)
        if m is None:
            continue
        src = m["src"]
        from_page = src.startswith(("file:", "http:", "https:", "data:")) or src == ""
        if not from_page or _BENIGN_CONSOLE.search(m["msg"]):
            continue
        if m["level"] in ("ERROR", "FATAL") or _BAD_CONSOLE.search(m["msg"]):
            problems.append(line)
    return problems


def _png_pixels(path: Path) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes) to HxWxC."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, chunk = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat.append(chunk)
        pos += 12 + length
    assert header is not None
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    raw = raw.reshape(height, 1 + width * bpp)
    out = np.zeros((height, width * bpp), dtype=np.uint8)
    prev = np.zeros(width * bpp, dtype=np.int32)
    for y in range(height):
        ftype, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if ftype == 0:
            cur = line
        elif ftype == 2:
            cur = (line + prev) & 0xFF
        elif ftype == 1:  # Sub: a running sum per channel
            cur = np.cumsum(line.reshape(width, bpp), axis=0).reshape(-1) & 0xFF
        else:  # Average or Paeth depend on the reconstructed left neighbour: go bytewise
            cur_l, prev_l = line.tolist(), prev.tolist()
            for x in range(width * bpp):
                a = cur_l[x - bpp] if x >= bpp else 0
                b = prev_l[x]
                if ftype == 3:
                    cur_l[x] = (cur_l[x] + (a + b) // 2) & 0xFF
                else:
                    c = prev_l[x - bpp] if x >= bpp else 0
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                    cur_l[x] = (cur_l[x] + pred) & 0xFF
            cur = np.array(cur_l, dtype=np.int32)
        out[y] = cur
        prev = cur
    return out.reshape(height, width, bpp)


def test_report_renders_in_headless_chromium(report: str, tmp_path: Path) -> None:
    chromium = _chromium()
    page = tmp_path / "report.html"
    write_report(report, page)
    assert page.stat().st_size > 1_000_000  # plotly.js is inside
    # A copy with the probe script first in <head>: it records JS errors and what rendered.
    probed = tmp_path / "probed.html"
    probed.write_text(report.replace("<head>", "<head>\n" + _PROBE, 1), encoding="utf-8")

    dom, stderr = _run_chromium(chromium, probed.as_uri(), tmp_path / "profile-dom",
                                ["--dump-dom"])
    assert not _page_console_problems(stderr), "\n".join(_page_console_problems(stderr))
    m = re.search(r'<pre id="sweep-probe">(.*?)</pre>', dom, re.S)
    assert m is not None, "the page never finished loading:\n" + stderr[-3000:]
    probe = json.loads(html.unescape(m.group(1)))
    assert probe["errors"] == [], probe["errors"]
    figures = {f["id"]: f for f in probe["figures"]}
    assert len(figures) == len(PLOTTED) + 1 + INSIGHTS, figures
    for fid, fig in figures.items():
        assert fig["mainSvg"] >= 1, f"{fid} did not render: {fig}"
        if fid == "sweep-parcoords":
            # stage + 4 params + metric axes, lines drawn with WebGL on canvases.
            assert fig["parcoordsAxes"] == len(PLOTTED) + 2, fig
            assert fig["canvases"] >= 1, fig
        elif fid == "sweep-importance":
            assert fig["bars"] == 2 * len(PLOTTED), fig  # total and alone, per parameter
        elif fid == "sweep-best":
            assert fig["traces"] == 2 * 3 and fig["points"] >= 3, fig  # all, stage 0, 1
        else:
            assert fig["points"] >= 40, fig
    assert figures["sweep-param-0"]["rects"] == 2  # lr: the two refine boxes
    assert dom.count('class="main-svg"') >= len(figures)

    shot = tmp_path / "shot.png"
    _, stderr = _run_chromium(chromium, page.as_uri(), tmp_path / "profile-shot",
                              [f"--screenshot={shot}"])
    assert not _page_console_problems(stderr), "\n".join(_page_console_problems(stderr))
    assert shot.exists(), stderr[-3000:]
    pixels = _png_pixels(shot)
    assert pixels.shape[:2] == (2400, 1400)
    rgb = pixels[..., :3].reshape(-1, 3)
    colours = np.unique(rgb.view(np.dtype((np.void, 3))))
    non_white = float(np.mean(np.any(rgb < 245, axis=1)))
    assert len(colours) > 200, f"screenshot looks blank: {len(colours)} colours"
    assert non_white > 0.03, f"screenshot looks blank: {non_white:.1%} non-white pixels"
    if os.environ.get("SWEEP_REPORT_ARTIFACTS"):
        dest = Path(os.environ["SWEEP_REPORT_ARTIFACTS"])
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, dest / "report-shot.png")
        shutil.copy(page, dest / "report.html")


@pytest.mark.parametrize("which", ["curves_report", "no_metric_report"])
def test_curves_and_no_metric_reports_render(which: str, request: pytest.FixtureRequest,
                                             tmp_path: Path) -> None:
    report = request.getfixturevalue(which)
    chromium = _chromium()
    probed = tmp_path / "probed.html"
    probed.write_text(report.replace("<head>", "<head>\n" + _PROBE, 1), encoding="utf-8")
    dom, stderr = _run_chromium(chromium, probed.as_uri(), tmp_path / "profile", ["--dump-dom"])
    assert not _page_console_problems(stderr), "\n".join(_page_console_problems(stderr))
    m = re.search(r'<pre id="sweep-probe">(.*?)</pre>', dom, re.S)
    assert m is not None, "the page never finished loading:\n" + stderr[-3000:]
    probe = json.loads(html.unescape(m.group(1)))
    assert probe["errors"] == [], probe["errors"]
    figures = {f["id"]: f for f in probe["figures"]}
    # + curves + parallel coordinates (+ best so far and importance, with a metric)
    extra = INSIGHTS if which == "curves_report" else 0
    assert len(figures) == len(PLOTTED) + 2 + extra, figures
    for fid, fig in figures.items():
        assert fig["mainSvg"] >= 1 and fig["traces"] >= 1, f"{fid} did not render: {fig}"
    data, _ = _figure(report, "sweep-curves")
    assert figures["sweep-curves"]["traces"] == len(data)

