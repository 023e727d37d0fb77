"""Shared fixtures: one local Ray per test session, token auth set explicitly."""

from __future__ import annotations

import os

import pytest

# Ray 2.5x turns token authentication on for new local clusters; say so explicitly so
# every Ray this suite starts (here and in CLI subprocesses) runs the same way.
os.environ.setdefault("RAY_AUTH_MODE", "token")
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
