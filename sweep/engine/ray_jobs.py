"""``sweep submit``: run ``sweep run`` on a Ray cluster as a Ray Job.

The working directory (the sweep file, the objective's code) and this package
travel in the job's runtime_env; the entrypoint is ``python -m sweep run``.
Ray's token authentication is used as Ray sets it up (RAY_AUTH_MODE /
RAY_AUTH_TOKEN in the environment); nothing here weakens it.

Example:
    $ sweep submit jobs/mlp.yaml --address http://127.0.0.1:8265 --follow
"""

from __future__ import annotations

import asyncio
import shlex
import sys
import time
from pathlib import Path

from ..core.errors import SweepError

AGENT_WAIT_S = 90.0
TERMINAL = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 130}
EXCLUDES = ["results/", ".git/", "**/__pycache__/", ".venv/", "*.parquet", ".hypothesis/"]


def entrypoint(spec_rel: str, results: str) -> str:
    """The job's command line (quoted for the job API's shell).

    Example: ``entrypoint("jobs/mlp.yaml", "s3://b/p")`` ->
    ``"python -m sweep run jobs/mlp.yaml --results s3://b/p"``
    """
    return " ".join(shlex.quote(a) for a in
                    ["python", "-m", "sweep", "run", spec_rel, "--results", results])


def submit(
    spec: str,
    *,
    address: str,
    results: str = "results",
    follow: bool = False,
    working_dir: str = ".",
    submission_id: str | None = None,
    agent_wait_s: float = AGENT_WAIT_S,
) -> int:
    """Submit the sweep and print its id; with ``follow``, stream logs and return the
    job's exit status (0 succeeded, 1 failed, 130 stopped)."""
    from ray.job_submission import JobSubmissionClient

    workdir = Path(working_dir).resolve()
    spec_path = Path(spec).resolve()
    try:
        spec_rel = spec_path.relative_to(workdir).as_posix()
    except ValueError:
        raise SweepError(f"the sweep file {spec} is not inside the working directory "
                         f"{workdir}; pass --working-dir or move the file") from None
    # The whole sweep package (this module lives in sweep/engine/).
    package_dir = str(Path(__file__).resolve().parents[1])
    runtime_env = {
        "working_dir": str(workdir),
        "py_modules": [package_dir],
        "excludes": EXCLUDES,
    }
    try:
        client = JobSubmissionClient(address)
    except Exception as exc:
        raise SweepError(f"cannot reach the Ray job API at {address}: {exc}") from None
    deadline = time.monotonic() + agent_wait_s
    delay = 1.0
    while True:
        try:
            job_id = client.submit_job(entrypoint=entrypoint(spec_rel, results),
                                       runtime_env=runtime_env, submission_id=submission_id)
            break
        except Exception as exc:
            # A fresh head's job agent can take a while to come up.
            if "No available agent" in str(exc) and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(delay * 1.5, 5.0)
                continue
            hint = (" (the head's job agent did not come up; check the head's dashboard "
                    "agent logs)" if "No available agent" in str(exc) else "")
            raise SweepError(f"job submission to {address} failed: {exc}{hint}") from None
    print(f"submitted {job_id} to {address}")
    if not follow:
        print(f"follow it:  ray job logs --address {address} -f {job_id}")
        print(f"stop it:    ray job stop --address {address} {job_id}")
        return 0
    return _follow(client, job_id)


def _follow(client: object, job_id: str) -> int:
    async def stream() -> None:
        async for lines in client.tail_job_logs(job_id):  # type: ignore[attr-defined]
            sys.stdout.write(lines)
            sys.stdout.flush()

    try:
        asyncio.run(stream())
    except KeyboardInterrupt:
        print(f"\nstopped following; the job goes on. Stop it with: ray job stop {job_id}",
              file=sys.stderr)
        return 130
    except Exception as exc:  # the log stream can drop; the status below still counts
        print(f"sweep: log stream ended: {exc}", file=sys.stderr)
    while True:
        status = str(client.get_job_status(job_id))  # type: ignore[attr-defined]
        status = status.rsplit(".", 1)[-1]
        if status in TERMINAL:
            print(f"job {job_id}: {status}")
            return TERMINAL[status]
        time.sleep(1.0)


__all__ = ["entrypoint", "submit"]
