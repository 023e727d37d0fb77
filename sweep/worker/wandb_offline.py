"""W&B training scripts under sweep: parameters in, logged metrics out, all offline.

W&B's agent hands each run its parameters through ``WANDB_SWEEP_PARAM_PATH``, a
config file (``wandb_version: 1`` then ``name: {value: ...}`` per parameter) that
``wandb.init()`` loads into ``wandb.config``, where the sweep's values override the
script's defaults. This module does the same for a sweep trial, with W&B in offline
mode (no account, no network, nothing sent anywhere, nothing written outside the
trial's folder), and reads back what the script logged:

* :func:`prepare` writes the parameter file into the trial's folder and returns the
  environment variables for the trial's command.
* :class:`RunReader` reads the run's ``.wandb`` file (a record stream of W&B's
  ``Record`` protobufs in LevelDB-log framing) incrementally while it is written:
  every history step as ``(step, {metric: float})`` and the summary.
  :func:`read_steps` and :func:`summary` read it once; :func:`watch` tails it from a
  thread and hands new steps to a callback (live reports).
* :func:`in_process` does all of that around a Python objective run in this process
  (W&B's function agents), and finishes any run the objective left open.

Nothing here imports Ray. ``wandb`` is an optional dependency: it is imported only to
decode a run file that exists (its ``Record`` protobuf classes), and
:func:`in_process` does nothing when it is not installed and otherwise only calls
into it when the objective has imported it.

Example:
    >>> env = prepare("/tmp/t1", {"lr": 0.1}, sweep_name="demo", trial_id="t1")
    >>> env["WANDB_MODE"], env["WANDB_SWEEP_PARAM_PATH"]
    ('offline', '/tmp/t1/wandb-sweep-params.yaml')
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import json
import os
import re
import struct
import sys
import threading
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import wandb_guard
from .file_events import FolderWatch
from .returned import as_number
from .trial_reports import check_step

PARAMS_FILE = "wandb-sweep-params.yaml"
"""The parameter file :func:`prepare` writes into the trial's folder."""

FLUSH_INTERVAL_S = 0.02
"""How often wandb-core flushes the run's ``.wandb`` file (its default is 15 s, which
would hold every record of a short run until the end): a logged step reaches the
reader (woken by the file's change, :func:`watch`) within about this long."""

SITE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wandb_site")
"""Put first on a trial command's ``PYTHONPATH``: its ``sitecustomize`` keeps W&B offline
in every Python the command starts, whatever the script asks (``wandb_guard``)."""

Step = tuple[int, dict[str, float]]
"""One logged step: (``_step``, numeric metrics, nested keys joined with dots)."""

_RUN_DIR_PATTERNS = ("offline-run-*", "run-*")
_FILE_IDENT = b":W&B"
_HEADER_LEN = 7  # ident, magic 0xBEE1 (little-endian), version 0
_BLOCK_LEN = 32768
_CHUNK_HEADER = struct.Struct("<IHB")  # crc32 of (type byte + data), data length, type
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


# ------------------------------------------------------------------ the trial


def _plain(value: Any) -> Any:
    """``value`` as YAML-safe plain data (numpy scalars through ``.item()``)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None:
        return None
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    item = getattr(value, "item", None)
    if callable(item):
        with contextlib.suppress(Exception):
            return _plain(item())
    return str(value)


def _safe_name(text: str, bad: str, limit: int) -> str:
    cleaned = re.sub(f"[{re.escape(bad)}\\s]", "-", text).strip("-")
    return cleaned[:limit] or "trial"


def write_params(path: str, params: Mapping[str, Any]) -> None:
    """Write ``params`` in W&B's config-file format (what ``WANDB_SWEEP_PARAM_PATH``
    points at): ``wandb_version: 1`` and ``name: {value: ...}`` per top-level key, so
    that nested parameters reach ``wandb.config`` as nested dicts.

    Example: ``write_params("/tmp/p.yaml", {"lr": 0.1, "opt": {"name": "adam"}})``
    writes ``lr: {value: 0.1}`` and ``opt: {value: {name: adam}}``.
    """
    doc: dict[str, Any] = {"wandb_version": 1}
    doc.update({str(k): {"value": _plain(v)} for k, v in params.items()})
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def prepare(
    trial_dir: str,
    params: Mapping[str, Any],
    *,
    sweep_name: str,
    trial_id: str,
) -> dict[str, str]:
    """Write the trial's parameter file into ``trial_dir`` and return the environment
    variables that run a W&B script offline inside it: ``wandb.init()`` then loads
    ``params`` into ``wandb.config`` and writes its run under ``trial_dir/wandb/``.

    Offline whatever the script asks (``PYTHONPATH`` starts with ``SITE_DIR``, whose
    ``sitecustomize`` forces every W&B mode offline), silent, no console capture, no
    git/code/requirements/system-metrics
    collection, no error reporting, W&B's cache/config/data folders inside
    ``trial_dir`` (nothing in ``$HOME``), run id and name from ``trial_id``, project
    from ``sweep_name``, and the ``.wandb`` file flushed every ``FLUSH_INTERVAL_S``.
    Merge the result over ``os.environ`` for a command (``env=dict(os.environ,
    **env)``); :func:`in_process` does it for Python objectives.

    Example: ``prepare("/runs/t1", {"lr": 0.1, "opt": {"name": "adam"}},
    sweep_name="demo", trial_id="8bf0b5019eb95080")["WANDB_RUN_ID"] ==
    "8bf0b5019eb95080"``
    """
    root = os.path.abspath(trial_dir)
    private = os.path.join(root, "wandb", ".sweep")  # wandb makes these when it needs them
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, PARAMS_FILE)
    write_params(path, params)
    python_path = os.environ.get("PYTHONPATH", "")
    return {
        "PYTHONPATH": SITE_DIR + (os.pathsep + python_path if python_path else ""),
        "WANDB_MODE": "offline",
        "WANDB_DIR": root,
        "WANDB_SWEEP_PARAM_PATH": path,
        "WANDB_RUN_ID": _safe_name(trial_id, ":;,#?/'\\", 64),
        "WANDB_NAME": trial_id,
        "WANDB_PROJECT": _safe_name(sweep_name, "/\\#?%:", 128),
        # Quiet: no banners on stderr (the trial's error tail), no stdout wrapping.
        "WANDB_SILENT": "true",
        "WANDB_CONSOLE": "off",
        # Nothing collected that costs time or spawns processes (git, wandb-symon).
        "WANDB_DISABLE_GIT": "true",
        "WANDB_DISABLE_CODE": "true",
        "WANDB__SAVE_REQUIREMENTS": "false",
        "WANDB__DISABLE_STATS": "true",
        "WANDB__DISABLE_META": "true",
        "WANDB__DISABLE_MACHINE_INFO": "true",
        "WANDB__DISABLE_UPDATE_CHECK": "true",
        # No crash reports or telemetry (wandb-core --no-observability).
        "WANDB_ERROR_REPORTING": "false",
        # wandb-core's own logs (default ~/.cache/wandb/logs) and the other per-user
        # folders, kept inside the trial.
        "WANDB_CACHE_DIR": os.path.join(private, "cache"),
        "WANDB_CONFIG_DIR": os.path.join(private, "config"),
        "WANDB_DATA_DIR": os.path.join(private, "data"),
        "WANDB_ARTIFACT_DIR": os.path.join(private, "artifacts"),
        # Start this trial's own wandb-core, never attach to one a parent started.
        "WANDB_SERVICE": "",
        # Live history for the reader (wandb-core's default flush is every 15 s).
        "WANDB__TRANSACTION_LOG_FLUSH_INTERVAL": str(FLUSH_INTERVAL_S),
    }


# ------------------------------------------------------------------ the run file


def _run_dir_key(path: str) -> tuple[str, int, str]:
    name = os.path.basename(path)
    stamp = name.split("run-", 1)[-1]
    return stamp[:15], len(name), name  # "-1" suffixes (same id, same second) sort after


def _run_files(trial_dir: str) -> list[str]:
    base = os.path.join(trial_dir, "wandb")
    found: list[str] = []
    for pattern in _RUN_DIR_PATTERNS:
        found.extend(glob.glob(os.path.join(base, pattern, "run-*.wandb")))
    return found


def find_run_file(trial_dir: str, *, exclude: Collection[str] = ()) -> str | None:
    """The ``.wandb`` file of the newest run under ``trial_dir/wandb/`` (W&B's
    ``latest-run`` link, else the newest run folder), leaving out the files in
    ``exclude`` (real paths); or None.

    Example: ``find_run_file("/runs/t1")`` ->
    ``"/runs/t1/wandb/offline-run-20250101_120000-t1/run-t1.wandb"``
    """
    base = os.path.join(trial_dir, "wandb")
    latest = os.path.join(base, "latest-run")
    candidates: list[str] = []
    if os.path.islink(latest):
        with contextlib.suppress(OSError):
            target = os.path.join(base, os.readlink(latest))  # stays absolute if it is
            candidates = [p for p in glob.glob(os.path.join(target, "run-*.wandb"))
                          if os.path.realpath(p) not in exclude]
    if not candidates:
        by_dir: dict[str, list[str]] = {}
        for path in _run_files(trial_dir):
            if os.path.realpath(path) not in exclude:
                by_dir.setdefault(os.path.dirname(path), []).append(path)
        if by_dir:
            candidates = by_dir[max(by_dir, key=_run_dir_key)]
    return sorted(candidates)[-1] if candidates else None


def _record_class() -> Any:
    try:
        from wandb.proto import wandb_internal_pb2  # the installed wandb's own schema
    except ImportError as exc:
        raise RuntimeError("reading a W&B run file needs the wandb package in this Python "
                           f"(python -m pip install wandb): {exc}") from exc

    return wandb_internal_pb2.Record


def _decode(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _item_value(item: Any) -> Any:
    """A history/summary/config item's value: the typed field when set, else JSON."""
    try:
        kind = item.WhichOneof("value")
    except ValueError:  # SummaryItem, ConfigItem and older HistoryItem: JSON only
        kind = None
    if kind == "json":
        return _decode(item.json)
    if kind == "none":
        return None
    if kind is not None:
        return getattr(item, kind)
    return _decode(item.value_json) if item.value_json else None


def _item_path(item: Any) -> list[str]:
    return [item.key] if item.key else list(item.nested_key)


def _as_step(value: Any) -> int | None:
    try:
        return check_step(value)  # the one rule of steps (reports, command lines)
    except ValueError:
        return None


def _flat_metrics(value: Any, name: str, out: dict[str, float]) -> None:
    """Numeric leaves of ``value`` into ``out``, nested keys joined with dots; W&B media
    and tables (dicts with a ``_type``) and non-numeric values are left out."""
    if isinstance(value, Mapping):
        if "_type" in value:
            return
        for key, inner in value.items():
            _flat_metrics(inner, f"{name}.{key}" if name else str(key), out)
        return
    number = as_number(value)  # the rule of results and reports: bools count as 1/0
    if number is not None and name:
        out[name] = number


def _public(path: list[str]) -> bool:
    return bool(path) and not path[0].startswith("_")  # _step, _runtime, _timestamp, _wandb


def _tree_set(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value


def _tree_remove(tree: dict[str, Any], path: list[str]) -> None:
    node: Any = tree
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


class RunReader:
    """Reads a trial's W&B run incrementally, while it is being written or after.

    Each :meth:`poll` reads what was appended since the last one (it remembers its
    offset, and leaves a partly written record for the next call), and returns the
    new history steps; :attr:`steps`, :meth:`summary` and :attr:`config` hold
    everything read so far. If the trial starts a newer run (a second
    ``wandb.init()``), the reader reads the rest of the earlier one, then moves to the
    newer: :attr:`steps` and :meth:`summary` keep what every run of the trial logged
    (a later run's value of a metric wins), :attr:`config`, :attr:`finished` and
    :attr:`exit_code` are the newest run's. With ``ignore_existing``, runs already in
    ``trial_dir`` (an earlier attempt of the trial) are never read; with
    ``newest_only``, only the newest run is (what :func:`read_steps` reads). Not
    thread-safe: poll from one thread at a time.

    Example:
        >>> reader = RunReader("/runs/t1")
        >>> new = reader.poll()        # [(0, {"loss": 0.9, "acc": 0.1}), ...]
        >>> reader.summary()["loss"]   # last value
    """

    def __init__(self, trial_dir: str, *, ignore_existing: bool = False,
                 newest_only: bool = False) -> None:
        self.trial_dir = os.path.abspath(trial_dir)
        self._newest_only = newest_only
        self._exclude = frozenset(
            os.path.realpath(p) for p in (_run_files(trial_dir) if ignore_existing else ()))
        self._done: set[str] = set()  # runs read to their end (a newer one started)
        self._earlier_steps: list[Step] = []
        self._earlier_summary: dict[str, float] = {}
        self._path: str | None = None
        self._reset(None)

    @property
    def steps(self) -> list[Step]:
        """Every history step read so far, of every run of the trial in order."""
        return self._earlier_steps + self._steps

    def _runs(self) -> list[str]:
        """The trial's run files not excluded nor done, oldest first."""
        if self._newest_only:
            newest = find_run_file(self.trial_dir, exclude=self._exclude)
            return [] if newest is None else [newest]
        found = {os.path.realpath(p) for p in _run_files(self.trial_dir)}
        found -= self._exclude | self._done
        return sorted(found, key=lambda p: (_run_dir_key(os.path.dirname(p)), p))

    def _reset(self, path: str | None) -> None:
        if self._path is not None:  # an earlier run: keep what it logged
            self._done.add(self._path)
            self._earlier_steps.extend(self._steps)
            self._earlier_summary = self.summary()
        self._path = path
        self._steps: list[Step] = []
        self.finished = False
        self.exit_code: int | None = None
        self.run_id: str | None = None
        self._offset = 0
        self._summary: dict[str, Any] = {}
        self._config: dict[str, Any] = {}
        self._last: dict[str, float] = {}

    # -- framing

    def _payloads(self, data: bytes) -> list[bytes]:
        """Whole records in ``data`` (the file from ``self._offset`` on); advances the
        offset past the last whole one. A torn record at the end waits for the next
        call; a damaged one in the middle loses the rest of its 32 KiB block (the
        writer starts every block afresh, so reading resumes at the next)."""
        base = self._offset
        end = base + len(data)
        pos = base
        if base == 0:
            if len(data) < _HEADER_LEN:
                return []
            if data[:4] != _FILE_IDENT:
                raise ValueError(f"{self.path}: not a W&B run file")
            pos = _HEADER_LEN
        committed = pos
        out: list[bytes] = []
        pending: list[bytes] | None = None
        while True:
            room = _BLOCK_LEN - pos % _BLOCK_LEN
            if room < _CHUNK_HEADER.size:  # the block's zero-filled tail
                if pos + room > end:
                    break
                pos += room
                if pending is None:
                    committed = pos
                continue
            if pos + _CHUNK_HEADER.size > end:
                break
            crc, length, kind = _CHUNK_HEADER.unpack_from(data, pos - base)
            start = pos + _CHUNK_HEADER.size
            stop = start + length
            if length > room - _CHUNK_HEADER.size or kind not in (_FULL, _FIRST, _MIDDLE, _LAST):
                damaged = True
            elif stop > end:
                break  # still being written
            else:
                chunk = data[start - base : stop - base]
                damaged = zlib.crc32(bytes([kind]) + chunk) & 0xFFFFFFFF != crc
                if damaged and stop == end:
                    break  # the last bytes may still be arriving
            if damaged:
                if pos + room > end:
                    break
                pos += room
                pending = None
                committed = pos
                continue
            pos = stop
            if kind == _FULL:
                out.append(chunk)
                pending = None
                committed = pos
            elif kind == _FIRST:
                pending = [chunk]
            elif pending is not None:
                pending.append(chunk)
                if kind == _LAST:
                    out.append(b"".join(pending))
                    pending = None
                    committed = pos
        self._offset = committed
        return out

    # -- records

    def poll(self) -> list[Step]:
        """Read what the run appended since the last call; return its new history
        steps (``[]`` when there is no run yet or nothing new).

        Example: ``RunReader("/runs/t1").poll()`` -> ``[(0, {"loss": 0.5}), ...]``
        """
        new: list[Step] = []
        for path in self._runs():
            if path != self.path:
                if self.path is not None:
                    new.extend(self._read())  # the rest of the run it leaves
                self._reset(path)
            new.extend(self._read())
        return new

    @property
    def path(self) -> str | None:
        """The run file being read (the newest so far), or None."""
        return self._path

    def _read(self) -> list[Step]:
        path = self.path
        if path is None:
            return []
        try:
            with open(path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        payloads = self._payloads(data)
        if not payloads:
            return []
        record_class = _record_class()
        new: list[Step] = []
        for payload in payloads:
            record = record_class()
            try:
                record.ParseFromString(payload)
            except Exception:
                continue
            self._apply(record, new)
        return new

    def _apply(self, record: Any, new: list[Step]) -> None:
        kind = record.WhichOneof("record_type")
        if kind == "history":
            self._history(record.history, new)
        elif kind == "summary":
            for item in record.summary.update:
                if path := _item_path(item):
                    _tree_set(self._summary, path, _item_value(item))
            for item in record.summary.remove:
                if path := _item_path(item):
                    _tree_remove(self._summary, path)
        elif kind == "config":
            self._config_items(record.config)
        elif kind == "run":
            self.run_id = record.run.run_id or self.run_id
            self._config_items(record.run.config)
        elif kind == "exit":
            self.finished = True
            self.exit_code = int(record.exit.exit_code)

    def _config_items(self, config: Any) -> None:
        for item in config.update:
            if path := _item_path(item):
                _tree_set(self._config, path, _item_value(item))
        for item in config.remove:
            if path := _item_path(item):
                _tree_remove(self._config, path)

    def _history(self, history: Any, new: list[Step]) -> None:
        step: int | None = None
        metrics: dict[str, float] = {}
        for item in history.item:
            path = _item_path(item)
            value = _item_value(item)
            if path == ["_step"] and _as_step(value) is not None:
                step = _as_step(value)
            elif _public(path):
                _flat_metrics(value, ".".join(path), metrics)
        if step is None:
            step = int(history.step.num)
        if metrics:
            self._steps.append((step, metrics))
            new.append((step, metrics))
            self._last.update(metrics)

    def summary(self) -> dict[str, float]:
        """The run's summary as read so far: the last value of each numeric metric
        (W&B's summary records over the last logged values, so a run that crashed
        before writing one still has its metrics), plus numeric entries the script
        set in ``run.summary``; nested keys joined with dots. With several runs in the
        trial, every run's metrics, a later run's value winning.

        Example: ``reader.summary()`` -> ``{"epoch": 4.0, "loss": 0.2, "acc": 0.8}``
        """
        out = {**self._earlier_summary, **self._last}
        for key, value in self._summary.items():
            if not key.startswith("_"):
                _flat_metrics(value, key, out)
        if self.path is not None:  # online runs (and some versions) write this file
            legacy = os.path.join(os.path.dirname(self.path), "files", "wandb-summary.json")
            with contextlib.suppress(OSError, ValueError):
                with open(legacy, encoding="utf-8") as f:
                    loaded = json.load(f)
                if isinstance(loaded, dict):
                    for key, value in loaded.items():
                        if not str(key).startswith("_"):
                            _flat_metrics(value, str(key), out)
        return out

    @property
    def config(self) -> dict[str, Any]:
        """The run's config as read so far (``wandb.config`` as the script saw it,
        sweep parameters included), without W&B's own ``_wandb`` entry.

        Example: ``reader.config`` -> ``{"lr": 0.1, "opt": {"name": "adam"}}``
        """
        return {k: v for k, v in self._config.items() if k != "_wandb"}


def read_steps(trial_dir: str) -> list[Step]:
    """Every history step the trial's newest run has logged so far.

    Example: ``read_steps("/runs/t1")`` -> ``[(0, {"loss": 1.0}), (1, {"loss": 0.5})]``
    """
    reader = RunReader(trial_dir, newest_only=True)
    reader.poll()
    return reader.steps


def summary(trial_dir: str) -> dict[str, float]:
    """The last value of each numeric metric of the trial's newest run (``{}`` when
    there is none). See :meth:`RunReader.summary`.

    Example: ``summary("/runs/t1")`` -> ``{"epoch": 4.0, "loss": 0.2, "acc": 0.8}``
    """
    reader = RunReader(trial_dir, newest_only=True)
    reader.poll()
    return reader.summary()


@contextlib.contextmanager
def watch(
    trial_dir: str,
    on_steps: Callable[[list[Step]], Any],
    *,
    interval_s: float = 0.5,
    ignore_existing: bool = True,
) -> Iterator[RunReader]:
    """Tail the trial's run from a daemon thread while the block runs: the thread sleeps
    until a file under ``trial_dir/wandb`` changes (inotify; where that is missing, it
    looks every ``interval_s`` seconds), then hands the new steps to ``on_steps``
    (called from that thread; its exceptions are ignored); once more when the block
    ends. Runs already in ``trial_dir`` when it starts (an earlier attempt) are not read
    unless ``ignore_existing`` is False. Read the yielded reader's ``steps`` and
    ``summary()`` after the block.

    Example:
        >>> with watch(trial_dir, lambda steps: print(steps)) as reader:
        ...     subprocess.run(argv, env=dict(os.environ, **env))
        >>> reader.summary()
    """
    reader = RunReader(trial_dir, ignore_existing=ignore_existing)
    stop = threading.Event()
    # The trial's folder, wandb/ in it, and the run folders in that (the .wandb files).
    events = FolderWatch(trial_dir, depth=2)

    def deliver() -> None:
        try:
            steps = reader.poll()
        except Exception:
            return
        if steps:
            with contextlib.suppress(Exception):
                on_steps(steps)

    def loop() -> None:
        while not stop.is_set():
            events.wait(interval_s)
            if not stop.is_set():
                deliver()

    thread = threading.Thread(target=loop, name="sweep-wandb-watch", daemon=True)
    thread.start()
    try:
        yield reader
    finally:
        stop.set()
        events.wake()
        thread.join()
        events.close()
        deliver()


# ------------------------------------------------------------- in this process

_IMPORTABLE: bool | None = None


def wandb_available() -> bool:
    """Whether the ``wandb`` package can be imported here (without importing it).

    Example: ``wandb_available()`` -> ``True`` when ``pip install wandb`` was run
    """
    global _IMPORTABLE
    if sys.modules.get("wandb") is not None:
        return True
    if "wandb" in sys.modules:  # set to None: imports of it fail
        return False
    if _IMPORTABLE is None:
        try:
            _IMPORTABLE = importlib.util.find_spec("wandb") is not None
        except (ImportError, ValueError):
            _IMPORTABLE = False
    return _IMPORTABLE


@dataclass
class RunInfo:
    """What :func:`in_process` yields: filled in with the trial's logged metrics when
    the block ends (``enabled`` is False, and nothing was touched, when ``wandb`` is
    not installed)."""

    trial_dir: str
    enabled: bool
    env: dict[str, str] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    summary: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    finished_open_run: bool = False
    """True when the objective left its run open and sweep finished it."""


def _wandb_teardown() -> None:
    """Finish W&B's session in this process (its service process ends; the next
    ``wandb.init()`` reads the environment afresh), if wandb is imported."""
    module = sys.modules.get("wandb")
    teardown = getattr(module, "teardown", None)
    if callable(teardown):
        # teardown() calls sys.exit() when the service process failed: not ours to raise.
        with contextlib.suppress(Exception, SystemExit):
            teardown()


def _finish_open_run(exit_code: int) -> bool:
    module = sys.modules.get("wandb")
    run = getattr(module, "run", None) if module is not None else None
    if run is None:
        return False
    with contextlib.suppress(Exception):
        run.finish(exit_code=exit_code)
    return True


@contextlib.contextmanager
def in_process(
    trial_dir: str,
    params: Mapping[str, Any],
    *,
    sweep_name: str,
    trial_id: str,
    on_steps: Callable[[list[Step]], Any] | None = None,
    interval_s: float = 0.5,
) -> Iterator[RunInfo]:
    """Run a Python objective that may call ``wandb.init()`` (W&B's function agents)
    as one offline W&B run of this trial.

    Keeps W&B offline in this process for good (``wandb_guard``: whatever mode the
    objective asks for), sets :func:`prepare`'s environment variables for the block
    and restores them after; starts W&B's session afresh before (so ``wandb.init()`` reads them) and
    ends it after, finishing a run the objective left open (with exit code 1 if the
    block raised); then fills in the yielded :class:`RunInfo` with the steps, summary
    and config of the trial's run. With ``on_steps``, new steps go there live (see
    :func:`watch`). Without the ``wandb`` package it does nothing. One trial at a
    time per process: it changes ``os.environ``.

    Example:
        >>> with in_process(trial_dir, config, sweep_name="demo", trial_id=tid) as info:
        ...     result = train(config)      # calls wandb.init(), wandb.log(...)
        >>> info.summary["loss"], len(info.steps)
    """
    info = RunInfo(trial_dir=trial_dir, enabled=wandb_available())
    if not info.enabled:
        yield info
        return
    # W&B stays offline in this process from now on, whatever the objective asks (the
    # environment below only sets a default that wandb.init(mode=...) overrides).
    wandb_guard.install()
    info.env = prepare(trial_dir, params, sweep_name=sweep_name, trial_id=trial_id)
    saved = {key: os.environ.get(key) for key in info.env}
    os.environ.update(info.env)
    _wandb_teardown()  # a session from an earlier trial would keep its settings
    reader = RunReader(trial_dir, ignore_existing=True)
    exit_code = 0
    try:
        with contextlib.ExitStack() as stack:
            if on_steps is not None:
                reader = stack.enter_context(watch(trial_dir, on_steps, interval_s=interval_s))
            try:
                yield info
            except BaseException:
                exit_code = 1
                raise
            finally:
                # Before the watcher's last read: finishing writes the run's last records.
                info.finished_open_run = _finish_open_run(exit_code)
                _wandb_teardown()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        with contextlib.suppress(Exception):
            reader.poll()
        info.steps = list(reader.steps)
        info.summary = reader.summary()
        info.config = reader.config
