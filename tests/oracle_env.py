"""W&B's own sweep engine, in a virtual environment of its own, as an oracle for tests.

W&B's engine is the PyPI package ``sweeps`` (the code behind W&B's sweep service). It is not
a dependency of sweep: it lives in ``.oracle-venv/`` at the repository root (ignored by git),
made once from ORACLE_PINS and reused while the pins and the Python version stay the same.
A file lock lets several pytest processes share it without racing.

    from tests.oracle_env import run_oracle, OracleUnavailable
    results = run_oracle(["tests/data/wandb/grid.yaml"])  # one dict per file

Each dict is what tests/wandb_oracle.py prints for a file (valid, violations, grid, ...).

CORPUS is tests/data/wandb/: W&B sweep files written for this project, each reproducing a
pattern of real public W&B sweep files (the real files themselves are not committed; see
its README.md). Its oracle.json is the oracle's verdict on every file of the folder;
regenerate it after adding or changing a file:

    python tests/oracle_env.py               # tests/data/wandb/oracle.json
    python tests/oracle_env.py OTHER_FOLDER  # OTHER_FOLDER/oracle.json

tests/wandb_compare.py sets sweep's reading of each file beside these verdicts.

SWEEP_ORACLE_VENV (a folder) and SWEEP_ORACLE_PYTHON (an interpreter to build the venv with)
override the defaults.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORACLE_SCRIPT = Path(__file__).resolve().parent / "wandb_oracle.py"
CORPUS = Path(__file__).resolve().parent / "data" / "wandb"
REFERENCE = CORPUS / "oracle.json"

# sweeps 0.2.0 (Aug 2022) is W&B's last release of its engine on PyPI. It declares only lower
# bounds and works with today's numpy 2 / pydantic 2 (pydantic warns about a renamed config
# key, harmlessly). Everything is pinned so that the oracle's answers cannot drift.
ORACLE_PINS = (
    "sweeps==0.2.0",
    "numpy==2.4.6",
    "scipy==1.17.1",
    "scikit-learn==1.9.1",
    "PyYAML==6.0.4",
    "jsonschema==4.26.0",
    "jsonschema-specifications==2025.9.1",
    "referencing==0.37.0",
    "rpds-py==2026.9.1",
    "attrs==26.1.0",
    "jsonref==1.1.0",
    "pydantic==2.14.4",
    "pydantic-core==2.50.5",
    "annotated-types==0.8.0",
    "typing-extensions==4.16.0",
    "typing-inspection==0.4.5",
    "joblib==1.6.0",
    "threadpoolctl==3.8.0",
    "narwhals==2.29.0",
    "cloudpickle==3.1.3",
)

INSTALL_TIMEOUT_S = 900


class OracleUnavailable(RuntimeError):
    """The oracle's venv could not be made (no package index, no venv module, ...)."""


def venv_dir() -> Path:
    return Path(os.environ.get("SWEEP_ORACLE_VENV") or ROOT / ".oracle-venv")


def _base_python() -> str:
    return os.environ.get("SWEEP_ORACLE_PYTHON") or sys.executable


def _venv_python(folder: Path) -> Path:
    return folder / "bin" / "python"


def _stamp(python: str) -> str:
    """What a venv was made from: when this changes, the venv is made again."""
    version = subprocess.run(
        [python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    return json.dumps({"python": version, "pins": list(ORACLE_PINS)}, sort_keys=True)


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _clean_env() -> dict[str, str]:
    """The environment for the venv's processes: nothing of sweep's Python leaks in."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONWARNINGS"] = "ignore"
    # jsonschema's order of several violations follows set iteration, hence the hash seed:
    # a fixed seed makes the oracle's answers (and oracle.json) the same on every run.
    env["PYTHONHASHSEED"] = "0"
    return env


def ensure_venv() -> Path:
    """The oracle venv's Python, making the venv first when it is missing or stale."""
    folder = venv_dir()
    marker = folder / "oracle-stamp.json"
    try:
        stamp = _stamp(_base_python())
    except (OSError, subprocess.CalledProcessError) as exc:
        raise OracleUnavailable(f"cannot run {_base_python()}: {exc}") from exc
    if marker.is_file() and marker.read_text() == stamp:
        return _venv_python(folder)
    with _locked(folder.with_name(folder.name + ".lock")):
        # Another process may have made it while this one waited for the lock.
        if marker.is_file() and marker.read_text() == stamp:
            return _venv_python(folder)
        if folder.exists():
            shutil.rmtree(folder)
        started = time.monotonic()
        steps = (
            [_base_python(), "-m", "venv", str(folder)],
            [str(_venv_python(folder)), "-m", "pip", "install", "--quiet", "--no-input",
             "--disable-pip-version-check", *ORACLE_PINS],
            [str(_venv_python(folder)), "-c", "import sweeps, yaml"],
        )
        for step in steps:
            try:
                done = subprocess.run(step, capture_output=True, text=True, env=_clean_env(),
                                      timeout=INSTALL_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise OracleUnavailable(f"{step[:4]}...: {exc}") from exc
            if done.returncode != 0:
                raise OracleUnavailable(
                    f"{' '.join(step[:4])} ... failed ({done.returncode}):\n"
                    f"{(done.stdout + done.stderr)[-3000:]}"
                )
        # The stamp is written last: a half-made venv (killed install) is made again.
        marker.write_text(stamp)
        (folder / "oracle-build-seconds.txt").write_text(f"{time.monotonic() - started:.1f}\n")
    return _venv_python(folder)


def run_oracle(paths, timeout: float = 600) -> list[dict]:
    """W&B's verdict on each sweep file, in order (see tests/wandb_oracle.py for the keys)."""
    paths = [str(p) for p in paths]
    if not paths:
        return []
    python = ensure_venv()
    done = subprocess.run([str(python), str(ORACLE_SCRIPT), *paths], capture_output=True,
                          text=True, env=_clean_env(), timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"wandb_oracle.py failed ({done.returncode}):\n{done.stderr[-3000:]}")
    results = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    if [r["file"] for r in results] != paths:
        raise RuntimeError("wandb_oracle.py did not answer for every file, in order")
    return results


def corpus_files(folder: Path = CORPUS) -> list[Path]:
    return sorted(Path(folder).glob("*.yaml"))


def _to_table(points: list[dict]) -> dict:
    """Grid points as {"columns": [...], "rows": [[...], ...]}: the same data, smaller."""
    columns = list(points[0]) if points else []
    if any(list(p) != columns for p in points):
        raise ValueError("grid points with different parameter names")
    return {"columns": columns, "rows": [[p[c] for c in columns] for p in points]}


def reference_grid(result: dict) -> list[dict] | None:
    """A grid from oracle.json back as W&B's flat points ({"a.b": value}), in W&B's order."""
    table = result.get("grid_table")
    if table is None:
        return None
    return [dict(zip(table["columns"], row)) for row in table["rows"]]


def load_reference(folder: Path = CORPUS) -> dict:
    """oracle.json as committed: {"engine": ..., "files": {file name: result}}.

    A result is what run_oracle gives for the file, except that its grid is stored once, flat,
    as ``grid_table`` (read it with reference_grid) instead of ``grid`` and ``grid_flat``,
    and that it records the file's ``sha256`` (a changed file needs a new verdict).
    """
    return json.loads((Path(folder) / "oracle.json").read_text())


def reference_entry(path: Path, result: dict) -> dict:
    """run_oracle's result for ``path`` as oracle.json stores it."""
    entry = dict(result, file=Path(path).name,
                 sha256=hashlib.sha256(Path(path).read_bytes()).hexdigest())
    if "grid" in entry:
        flat = entry.pop("grid_flat")
        del entry["grid"]
        entry["grid_size"] = None if flat is None else len(flat)
        entry["grid_table"] = None if flat is None else _to_table(flat)
    return entry


def write_reference(folder: Path = CORPUS) -> Path:
    """Run the oracle on every *.yaml file of ``folder`` and write its oracle.json."""
    files = corpus_files(folder)
    results = run_oracle(files)
    by_name = {path.name: reference_entry(path, result) for path, result in zip(files, results)}
    document = {
        "engine": {
            "package": "sweeps (W&B's sweep engine, PyPI)",
            "pins": list(ORACLE_PINS),
            "python": json.loads(_stamp(_base_python()))["python"],
            "regenerate": "python tests/oracle_env.py",
        },
        "files": by_name,
    }
    # One grid row per line: readable, and far smaller than one value per line.
    rows = {}
    for result in by_name.values():
        table = result.get("grid_table")
        if table:
            for i, row in enumerate(table["rows"]):
                key = f"@@row-{len(rows)}@@"
                rows[key] = json.dumps(row, sort_keys=True)
                table["rows"][i] = key
    text = json.dumps(document, indent=1, sort_keys=True)
    text = re.sub(r'"(@@row-\d+@@)"', lambda m: rows[m.group(1)], text)
    reference = Path(folder) / "oracle.json"
    reference.write_text(text + "\n")
    return reference


if __name__ == "__main__":
    started = time.monotonic()
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS
    out = write_reference(folder)
    shown = out.relative_to(ROOT) if out.resolve().is_relative_to(ROOT) else out
    print(f"wrote {shown} ({len(corpus_files(folder))} files) "
          f"in {time.monotonic() - started:.1f}s")
