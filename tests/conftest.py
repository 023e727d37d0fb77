"""Shared fixtures: one local Ray per test session, on a token of the session's own."""

from __future__ import annotations

import os

import pytest

from tests.procs import isolate_ray

# Ray 2.5x turns token authentication on for new local clusters and, without a token,
# writes one to ~/.ray/auth_token (and later Rays read it). Every Ray this suite starts
# or joins (here, in CLI subprocesses, in a test's own cluster) runs in token mode with
# this session's token, whatever the shell exported (RAY_AUTH_MODE=disabled included):
# no test depends on another's side effect, none reads or writes the user's ~/.ray.
isolate_ray(os.environ)
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray with 2 CPUs and 2 logical GPUs, shared by the whole session."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture
def results(tmp_path):
    """A fresh results root."""
    return str(tmp_path / "results")
