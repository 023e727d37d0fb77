"""A week-long sweep's part files: one-second trials, flushed every 30 s, for 7 days.

A week is 20,160 flushes of 30 s; with ``--slots`` trials finishing every second that is
``30 * slots`` rows a flush. The flushes go through ``sweep.store.ResultsWriter`` exactly as
the driver makes them (``add`` then ``flush``; the writer merges small part files as it goes),
without Ray and without waiting: the clock is simulated, the files are real. Printed at
the end of each simulated day: part files on disk, rows, the bytes of the dataset, the
bytes written so far (flushes and merges), the rows merges rewrote per row flushed (the
write amplification of the size-tiered merge, which bytes overstate: a small file is
mostly its footer), and the longest single flush (a merge happens inside the flush that triggers it,
so this is the longest the driver waits on the store). Then the same figures for Ray-free
readers: ``ResultsReader.counts`` and ``best`` on the final dataset.

Without compaction a week would be 20,160 files a stage; the target is a handful. A
benchmark: it prints figures and asserts nothing.

    python tests/bench/week.py                 # 7 days, 2 slots (60 rows a flush)
    python tests/bench/week.py --days 1 --slots 16
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

FLUSH_S = 30
DAY_S = 24 * 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--slots", type=int, default=2, help="trials finishing each second")
    args = parser.parse_args()

    import pyarrow.parquet as pq

    import sweep
    from sweep.core.metric import Metric
    from sweep.core.records import TrialRecord
    from sweep.space import Space
    from sweep.store.codec import Codec
    from sweep.store.folder import ResultsFolder
    from sweep.store.parts import PartSet
    from sweep.store.reader import ResultsReader
    from sweep.store.writer import ResultsWriter

    space = Space({"lr": sweep.loguniform(1e-4, 1), "x": sweep.uniform(0, 1),
                   "opt": sweep.choice(["sgd", "adam", "rmsprop"])})
    root = tempfile.mkdtemp(prefix="sweep-week-")
    folder = ResultsFolder(root, "week")
    writer, reader = ResultsWriter(folder, Codec.of(space)), ResultsReader(folder)
    trials_dir = Path(folder.trials.directory)
    written = 0
    seen: set[str] = set()
    rows_merged = [0]
    real_replace = PartSet._replace

    def replace(self: PartSet, stage: int, inputs: list[str], schema: object) -> str:
        path = real_replace(self, stage, inputs, schema)
        rows_merged[0] += pq.read_metadata(path).num_rows
        return path

    PartSet._replace = replace  # observed only: the merge itself is unchanged

    def disk() -> tuple[int, int]:
        files = list(trials_dir.rglob("part-*.parquet"))
        return len(files), sum(f.stat().st_size for f in files)

    def count_new() -> int:
        nonlocal written
        for f in trials_dir.rglob("part-*.parquet"):
            if f.name not in seen:
                seen.add(f.name)
                written += f.stat().st_size
        return written

    per_flush = FLUSH_S * args.slots
    flushes_a_day = DAY_S // FLUSH_S
    rows = 0
    longest = 0.0
    t_start = time.perf_counter()
    print(f"# {args.days} days of 1 s trials on {args.slots} slots: {flushes_a_day:,} "
          f"flushes a day of {per_flush} rows")
    print(f"{'day':>4} {'files':>6} {'rows':>11} {'dataset MiB':>12} {'written MiB':>12} "
          f"{'rewrites/row':>13} {'longest flush s':>16} {'wall s':>8}")
    for day in range(1, args.days + 1):
        for _ in range(flushes_a_day):
            batch = []
            for _ in range(per_flush):
                now = 1.7e9 + rows
                config = space.from_unit([((rows * 0.6180339887) % 1.0),
                                          ((rows * 0.7548776662) % 1.0),
                                          ((rows * 0.5698402910) % 1.0)])
                batch.append(TrialRecord(
                    sweep="week", stage=0, trial_id=f"{rows:016x}", status="ok",
                    params=config, metrics={"loss": (rows * 0.37) % 1.0}, attempts=1,
                    started_at=now, finished_at=now + 1.0, duration_s=1.0,
                    node="10.0.0.1/abcdef12", gpu_ids="", step=None))
                rows += 1
            t0 = time.perf_counter()
            writer.add(batch)
            writer.flush()
            longest = max(longest, time.perf_counter() - t0)
            count_new()
        files, size = disk()
        print(f"{day:>4} {files:>6} {rows:>11,} {size / 2**20:>12.1f} {written / 2**20:>12.1f} "
              f"{rows_merged[0] / max(rows, 1):>13.1f} {longest:>16.3f} "
              f"{time.perf_counter() - t_start:>8.0f}", flush=True)
    t0 = time.perf_counter()
    counts = reader.counts()
    t1 = time.perf_counter()
    best = reader.best(Metric("loss"), 5)
    t2 = time.perf_counter()
    print(f"counts {int(counts['n'].sum()):,} rows in {t1 - t0:.2f} s; best 5 in "
          f"{t2 - t1:.2f} s (best loss {best['metrics.loss'].iloc[0]:.3g}); "
          f"without merging: {rows // per_flush:,} files")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    main()
