"""Trial checkpoints (sweep.store.checkpoints): saved whole, restored only when committed.

No Ray. Most tests run twice: on a local results root and on the S3 test server
(tests/s3_server.py, the same fixture as tests/test_s3.py). A writer killed in the middle
of a save is a real process, SIGKILLed while it is held inside the copy or the commit.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
import uuid
from typing import NamedTuple

import pyarrow.fs as pafs
import pytest

from sweep.core.errors import SweepError
from sweep.store import checkpoints
from sweep.store.checkpoints import CheckpointStore, Usage
from sweep.store.folder import open_root
from tests.procs import REPO
from tests.test_s3 import BUCKET, keys, s3, uri  # noqa: F401 (s3: the server fixture)

NAME = re.compile(r"ckpt-\d{12}-[0-9a-f]{8}")


@pytest.fixture(autouse=True)
def temporary_folders(tmp_path, monkeypatch):
    """Restores into a new temporary folder land under the test's own folder."""
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))


class Where(NamedTuple):
    root: str  # the results root
    env: dict  # the environment of a child process that writes there
    server: dict | None  # the S3 fixture's, or None on a local disk
    prefix: str  # the root's key prefix in the bucket ("" on a local disk)


@pytest.fixture(params=["local", "s3"])
def where(request, tmp_path):
    """A fresh results root on this disk, or in the S3 test server's bucket."""
    if request.param == "local":
        return Where(str(tmp_path / "results"), dict(os.environ), None, "")
    server = request.getfixturevalue("s3")
    prefix = f"ckpt-{uuid.uuid4().hex[:8]}"
    return Where(uri(server, prefix), server["env"], server, prefix)


def make_tree(path, seed=b""):
    """A checkpoint-like directory: binary files, nested folders, an empty file and an
    empty folder. Returns what ``read_tree`` should give back."""
    files = {
        "model.bin": os.urandom(300_000) + seed,
        "optimizer/state.bin": os.urandom(1000),
        "optimizer/deep/er/x.npy": bytes(range(256)) * 3,
        "meta.json": b'{"epoch": 3}' + seed,
        "empty.txt": b"",
    }
    for rel, data in files.items():
        full = path / rel
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)
    (path / "logs" / "none").mkdir(parents=True)
    return read_tree(path)


def read_tree(path):
    """({relative path: bytes}, {empty folders}) of a local directory."""
    files, empty = {}, set()
    for here, dirs, names in os.walk(path):
        rel = os.path.relpath(here, path)
        for name in names:
            with open(os.path.join(here, name), "rb") as f:
                files[os.path.normpath(os.path.join(rel, name))] = f.read()
        if not dirs and not names and rel != ".":
            empty.add(rel)
    return files, empty


def entries(root, trial):
    """The names in a trial's checkpoint folder (what a listing shows)."""
    fs, base = open_root(root)
    folder = f"{base}/demo/checkpoints/{trial}"
    return sorted(i.base_name for i in fs.get_file_info(
        pafs.FileSelector(folder, allow_not_found=True)))


# ------------------------------------------------------------------ round trip


def test_round_trip_nested_folders_and_binary_files(where, tmp_path):
    root = where.root
    store = CheckpointStore(root, "demo")
    src = tmp_path / "src"
    want = make_tree(src)

    reports = [{"step": i, "loss": 1.0 / (i + 1)} for i in range(4)]
    info = store.save("t1", 3, str(src), attempt=2, meta={"reports": reports})
    assert info.step == 3 and info.attempt == 2 and info.seconds >= 0
    assert NAME.fullmatch(info.name) and info.name.startswith("ckpt-000000000003-")
    assert info.bytes == sum(len(b) for b in want[0].values())

    # Restored on "another node": a store unpickled from the driver's, a fresh directory.
    other = pickle.loads(pickle.dumps(store))
    restored = other.fetch("t1")
    assert restored is not None
    assert os.path.dirname(restored.path) == tempfile.gettempdir()
    assert os.path.basename(restored.path).startswith("sweep-restore-t1-")
    assert restored.info.name == info.name and restored.info.step == 3
    assert restored.info.bytes == info.bytes and restored.info.attempt == 2
    assert read_tree(restored.path) == want
    assert restored.meta == {"reports": reports}
    assert other.latest("t1") == restored.info
    assert [c.name for c in other.list("t1")] == [info.name]

    # The layout: the files under the checkpoint's name, its manifest beside it.
    assert entries(root, "t1") == sorted([info.name, f"{info.name}.json"])
    fs, base = open_root(root)
    with fs.open_input_stream(f"{base}/demo/checkpoints/t1/{info.name}.json") as f:
        manifest = json.loads(f.read())
    assert manifest["step"] == 3 and manifest["attempt"] == 2
    assert manifest["files"] == {rel: len(b) for rel, b in want[0].items()}
    if where.server is not None:
        top = f"{where.prefix}/demo/checkpoints/t1"
        found = keys(where.server, f"{top}/")
        assert f"{top}/{info.name}/optimizer/deep/er/x.npy" in found
        assert f"{top}/{info.name}.json" in found
        assert not [k for k in found if "/.tmp-" in k], found


def test_restore_into_a_given_directory_and_when_there_is_none(tmp_path):
    store = CheckpointStore(str(tmp_path / "results"), "demo")
    assert store.latest("t1") is None and store.list("t1") == []
    assert store.restore("t1") is None and store.fetch("t1") is None

    src = tmp_path / "src"
    want = make_tree(src)
    store.save("t1", 0, src)
    dest = tmp_path / "restore" / "here"
    assert store.restore("t1", str(dest)) == str(dest)
    assert read_tree(dest) == want
    assert store.fetch("t1").meta is None  # saved without
    with pytest.raises(SweepError, match=re.escape(str(dest)) + ".*not empty"):
        store.restore("t1", str(dest))


def test_latest_is_the_highest_step_then_the_last_committed(tmp_path):
    store = CheckpointStore(str(tmp_path / "results"), "demo")
    saved = {}
    for i, step in enumerate([2, 5, 4, 5]):
        src = tmp_path / f"src{i}"
        src.mkdir()
        (src / "which").write_text(str(i))
        saved[i] = store.save("t1", step, src)
        time.sleep(0.01)  # distinct commit times for the two saves of step 5
    assert [c.step for c in store.list("t1")] == [2, 4, 5, 5]
    assert store.latest("t1").name == saved[3].name
    with open(os.path.join(store.restore("t1"), "which")) as f:
        assert f.read() == "3"


# ---------------------------------------------------------- writers cut short

# A writer held inside a save at PHASE, which touches MARKER there and waits to be killed:
# "copy": files copied one at a time, the ones before model.bin done, model.bin half
# written (on S3 its upload never completes); "commit": every file copied, the manifest
# written under its temporary name, not yet renamed.
CHILD = r"""
import os, sys, time
from sweep.store import checkpoints
root, src, marker, phase = sys.argv[1:5]

def hold():
    open(marker, "w").close()
    time.sleep(600)

if phase == "copy":
    real_put = checkpoints._put
    def put(fs, s, d):
        if os.path.basename(s) != "model.bin":
            return real_put(fs, s, d)
        with open(s, "rb") as f, fs.open_output_stream(d) as out:
            out.write(f.read(100_000))
            out.flush()
            hold()
    checkpoints._put = put
    checkpoints._each = lambda work, items: [work(item) for item in items]
else:
    def write_whole(fs, folder, base, data):
        with fs.open_output_stream(f"{folder}/.tmp-{'0' * 32}-{base}") as f:
            f.write(data)
        hold()
    checkpoints._write_whole = write_whole
checkpoints.CheckpointStore(root, "demo").save("t1", 2, src)
"""


def kill_mid_save(root, env, src, tmp_path, phase):
    """Run a writer of step 2 of trial t1, SIGKILL it inside the save at ``phase``."""
    marker = tmp_path / f"held-{phase}"
    child = subprocess.Popen([sys.executable, "-c", CHILD, root, str(src), str(marker), phase],
                             cwd=REPO, env={**env, "PYTHONPATH": str(REPO)},
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, child.stderr.read()
            assert time.monotonic() < deadline, "the writer never reached the hold"
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -9


@pytest.mark.parametrize("phase", ["copy", "commit"])
def test_a_save_cut_short_is_never_restored(where, tmp_path, phase):
    root, env = where.root, where.env
    store = CheckpointStore(root, "demo")
    first = make_tree(tmp_path / "first", seed=b"1")
    committed = store.save("t1", 1, tmp_path / "first")
    make_tree(tmp_path / "second", seed=b"2")

    kill_mid_save(root, env, tmp_path / "second", tmp_path, phase)

    # The dead writer left something of step 2 behind, but no manifest of it.
    names = entries(root, "t1")
    left = [n for n in names if "ckpt-000000000002-" in n]
    assert left, names
    assert not [n for n in names if NAME.fullmatch(n.removesuffix(".json"))
                and n.endswith(".json") and "000000000002" in n]
    assert store.latest("t1").name == committed.name
    assert [c.step for c in store.list("t1")] == [1]
    assert read_tree(store.restore("t1")) == first

    # A save may still be writing step 2: pruning keeps what lies above the newest commit.
    assert store.prune("t1", keep=1) == 0
    assert [n for n in entries(root, "t1") if "000000000002" in n] == left
    # Once a later step commits, the leftover (and the older checkpoint) go.
    third = make_tree(tmp_path / "third", seed=b"3")
    newest = store.save("t1", 3, tmp_path / "third")
    assert store.prune("t1", keep=1) == 2
    assert entries(root, "t1") == sorted([newest.name, f"{newest.name}.json"])
    assert read_tree(store.restore("t1")) == third


# ------------------------------------------------------------- sizes, manifests


@pytest.mark.parametrize("damage", ["short", "long", "missing"])
def test_files_of_other_sizes_than_the_manifest_are_rejected(where, tmp_path, damage, caplog):
    root = where.root
    store = CheckpointStore(root, "demo")
    first = make_tree(tmp_path / "first", seed=b"1")
    store.save("t1", 1, tmp_path / "first")
    make_tree(tmp_path / "second", seed=b"2")
    bad = store.save("t1", 2, tmp_path / "second")

    fs, base = open_root(root)
    path = f"{base}/demo/checkpoints/t1/{bad.name}/optimizer/state.bin"
    if damage == "missing":
        fs.delete_file(path)
    else:
        with fs.open_output_stream(path) as f:
            f.write(b"x" * (10 if damage == "short" else 5000))

    with caplog.at_level(logging.WARNING, logger="sweep"):
        assert store.latest("t1").step == 1
        assert read_tree(store.restore("t1")) == first
    assert f"{bad.name} is incomplete: optimizer/state.bin" in caplog.text


def test_a_checkpoint_that_changes_while_it_downloads_is_passed_over(tmp_path, monkeypatch,
                                                                     caplog):
    store = CheckpointStore(str(tmp_path / "results"), "demo")
    first = make_tree(tmp_path / "first", seed=b"1")
    store.save("t1", 1, tmp_path / "first")
    make_tree(tmp_path / "second", seed=b"2")
    bad = store.save("t1", 2, tmp_path / "second")
    listed = store._committed("t1")  # listed whole, then cut short before the download
    folder = tmp_path / "results" / "demo" / "checkpoints" / "t1" / bad.name
    (folder / "model.bin").write_bytes(b"short")
    monkeypatch.setattr(store, "_committed", lambda trial_id: listed)
    with caplog.at_level(logging.WARNING, logger="sweep"):
        restored = store.fetch("t1")
    assert restored.info.step == 1 and read_tree(restored.path) == first
    assert "model.bin has 5 bytes" in caplog.text


@pytest.mark.parametrize("text", [
    "{not json",
    "[1, 2]",
    '{"step": 2}',
    '{"step": 7, "files": {}}',
    '{"step": 2, "files": {"../../escape": 1}}',
    '{"step": 2, "files": {"/etc/passwd": 1}}',
    '{"step": 2, "files": {"a": -1}}',
    '{"step": 2, "files": {}, "dirs": ["a/../.."]}',
    '{"step": 2, "files": {}, "meta": [1]}',
])
def test_a_corrupt_manifest_is_skipped_with_a_warning(tmp_path, caplog, text):
    store = CheckpointStore(str(tmp_path / "results"), "demo")
    first = make_tree(tmp_path / "first")
    store.save("t1", 1, tmp_path / "first")
    make_tree(tmp_path / "second", seed=b"2")
    bad = store.save("t1", 2, tmp_path / "second")
    manifest = tmp_path / "results" / "demo" / "checkpoints" / "t1" / f"{bad.name}.json"
    manifest.write_text(text)
    with caplog.at_level(logging.WARNING, logger="sweep"):
        assert [c.step for c in store.list("t1")] == [1]
        assert read_tree(store.restore("t1")) == first
    assert f"checkpoint manifest {manifest} is not valid" in caplog.text
    assert "Traceback" not in caplog.text
    # Retention passes over it as a leftover once a later step commits.
    store.save("t1", 3, tmp_path / "first")
    store.prune("t1", keep=1)
    assert not manifest.exists() and not manifest.with_suffix("").exists()


# -------------------------------------------------------------------- retention


def save_steps(store, trial, steps, tmp_path):
    src = tmp_path / f"src-{trial}"
    if not src.exists():
        make_tree(src)
    return [store.save(trial, step, src) for step in steps]


def test_retention_keeps_the_last_keep_checkpoints(where, tmp_path):
    root = where.root
    store = CheckpointStore(root, "demo")
    saved = save_steps(store, "t1", [1, 2, 3, 4, 5], tmp_path)
    assert store.prune("t1", keep=2) == 3
    assert [c.name for c in store.list("t1")] == [saved[3].name, saved[4].name]
    assert entries(root, "t1") == sorted(
        n for c in saved[3:] for n in (c.name, f"{c.name}.json"))
    assert store.prune("t1", keep=2) == 0
    assert store.prune("t1", keep=0) == 2
    assert store.list("t1") == [] and store.restore("t1") is None


def test_prune_spares_a_save_in_progress(tmp_path):
    """Leftovers above the newest committed step may be a save under way: kept, unless
    the caller says which names are in use."""
    root = str(tmp_path / "results")
    store = CheckpointStore(root, "demo")
    save_steps(store, "t1", [4], tmp_path)
    folder = tmp_path / "results" / "demo" / "checkpoints" / "t1"
    old, busy = "ckpt-000000000003-0000aaaa", "ckpt-000000000009-0000bbbb"
    (folder / old).mkdir()
    (folder / old / "model.bin").write_bytes(b"half")
    (folder / f".tmp-{'a' * 32}-{old}.json").write_text("{}")
    (folder / busy).mkdir()
    (folder / busy / "model.bin").write_bytes(b"half")
    (folder / "unrelated.txt").write_text("not a checkpoint's")

    assert store.prune("t1", keep=1) == 1  # the step-3 leftover (folder and temp manifest)
    assert sorted(os.listdir(folder)) == sorted(
        [store.latest("t1").name, f"{store.latest('t1').name}.json", busy, "unrelated.txt"])
    assert store.prune("t1", keep=1, in_use={busy}) == 0
    assert busy in os.listdir(folder)
    assert store.prune("t1", keep=1, in_use=()) == 1
    assert busy not in os.listdir(folder) and "unrelated.txt" in os.listdir(folder)


def test_prune_stage_keeps_the_top_trials_final_checkpoint_only(where, tmp_path):
    root = where.root
    store = CheckpointStore(root, "demo")
    for trial in ("a1", "b2", "c3"):
        save_steps(store, trial, [1, 2], tmp_path)
    save_steps(store, "other-stage", [7], tmp_path)
    per = store.latest("a1").bytes
    assert store.usage().checkpoints == 7

    assert store.prune_stage({"a1"}, ["a1", "b2", "c3", "never-ran"]) == 2
    assert [c.step for c in store.list("a1")] == [2]
    assert store.list("b2") == [] and store.list("c3") == []
    assert store.trial_ids() == {"a1", "other-stage"}
    usage = store.usage()
    assert usage.checkpoints == 2
    assert usage.bytes >= 2 * per  # the files, and two small manifests
    assert usage.bytes < 2 * per + 4096


def test_usage_of_a_sweep_without_checkpoints(tmp_path):
    assert CheckpointStore(str(tmp_path / "results"), "demo").usage() == Usage(0, 0)


# ----------------------------------------------------------------------- errors


def test_a_missing_or_wrong_source_is_a_sweep_error_naming_it(tmp_path):
    store = CheckpointStore(str(tmp_path / "results"), "demo")
    missing = tmp_path / "nowhere"
    with pytest.raises(SweepError, match=re.escape(str(missing)) + ".*does not exist"):
        store.save("t1", 1, missing)
    a_file = tmp_path / "weights.pt"
    a_file.write_bytes(b"123")
    with pytest.raises(SweepError, match=re.escape(str(a_file)) + ".*not a directory"):
        store.save("t1", 1, a_file)
    assert store.list("t1") == []


def test_an_unreadable_source_is_a_sweep_error_naming_it(tmp_path, monkeypatch):
    """A file or folder this process may not read (simulated: the tests may run as root,
    who reads everything)."""
    store = CheckpointStore(str(tmp_path / "results"), "demo")
    src = tmp_path / "src"
    make_tree(src)
    locked = str(src / "optimizer" / "state.bin")

    def no_open(path, *args, **kwargs):
        if path == locked:
            raise PermissionError(13, "Permission denied", path)
        return open(path, *args, **kwargs)

    monkeypatch.setattr(checkpoints, "open", no_open, raising=False)
    with pytest.raises(SweepError, match=re.escape(locked) + ".*cannot be read: Permission"):
        store.save("t1", 1, src)
    monkeypatch.undo()
    assert store.list("t1") == [] and entries(str(tmp_path / "results"), "t1") == []

    walk = os.walk
    hidden = str(src / "optimizer")

    def no_listing(top, onerror=None, **kwargs):
        onerror(PermissionError(13, "Permission denied", hidden))
        yield from walk(top, onerror=onerror, **kwargs)

    monkeypatch.setattr(checkpoints.os, "walk", no_listing)
    with pytest.raises(SweepError, match=re.escape(repr(hidden)) + " cannot be read"):
        store.save("t1", 1, src)


def test_a_root_that_cannot_be_written_is_a_sweep_error_naming_it(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    store = CheckpointStore(str(blocker / "results"), "demo")
    src = tmp_path / "src"
    make_tree(src)
    where = str(blocker / "results" / "demo" / "checkpoints")
    with pytest.raises(SweepError, match=re.escape(where)):
        store.save("t1", 1, src)
    with pytest.raises(SweepError, match=re.escape(where)):
        store.check_writable()
    CheckpointStore(str(tmp_path / "results"), "demo").check_writable()


def test_a_failed_copy_leaves_nothing_behind(tmp_path, monkeypatch):
    store = CheckpointStore(str(tmp_path / "results"), "demo")
    src = tmp_path / "src"
    make_tree(src)
    real_put = checkpoints._put

    def put(fs, s, d):
        if s.endswith("model.bin"):
            raise OSError(28, "No space left on device")
        return real_put(fs, s, d)

    monkeypatch.setattr(checkpoints, "_put", put)
    with pytest.raises(SweepError, match=r"could not write the checkpoint .*No space left"):
        store.save("t1", 1, src)
    assert entries(str(tmp_path / "results"), "t1") == []


@pytest.mark.parametrize("call", [
    lambda s, src: s.save("t1", -1, src),
    lambda s, src: s.save("t1", 1.5, src),
    lambda s, src: s.save("t1", True, src),
    lambda s, src: s.save("../t1", 1, src),
    lambda s, src: s.save("a/b", 1, src),
    lambda s, src: s.save(".hidden", 1, src),
    lambda s, src: s.prune("t1", keep=-1),
    lambda s, src: s.save("t1", 1, src, attempt="2"),
    lambda s, src: s.save("t1", 1, src, meta={"model": object()}),
    lambda s, src: s.save("t1", 1, src, meta={"loss": float("nan")}),
])
def test_bad_arguments_are_value_errors(tmp_path, call):
    src = tmp_path / "src"
    src.mkdir()
    with pytest.raises(ValueError, match="checkpoint: "):
        call(CheckpointStore(str(tmp_path / "results"), "demo"), src)


# --------------------------------------------------------------------- pickling


def test_pickles_as_two_strings_and_opens_its_filesystem_on_use(tmp_path):
    store = CheckpointStore(str(tmp_path / "results"), "demo")
    fresh = pickle.dumps(store)
    make_tree(tmp_path / "src")
    info = store.save("t1", 1, tmp_path / "src")  # opens the filesystem
    used = pickle.dumps(store)
    assert fresh == used and len(used) < 300
    assert b"pyarrow" not in used
    copy = pickle.loads(used)
    assert (copy.root, copy.folder) == (store.root, store.folder)
    assert copy._opened is None
    assert copy.latest("t1") == store.latest("t1") and copy.latest("t1").name == info.name
    assert repr(copy) == f"CheckpointStore({store.root!r}, 'demo')"


def test_s3_store_pickles_its_uri_only(s3):  # noqa: F811 (the fixture)
    root = uri(s3, "pickled")
    store = CheckpointStore(root, "demo")
    assert store.usage() == Usage(0, 0)
    copy = pickle.loads(pickle.dumps(store))
    assert copy.root == root and copy._opened is None
    assert copy.directory == f"{BUCKET}/pickled/demo/checkpoints"
