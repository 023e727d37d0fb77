"""The test suite stands alone: every Ray it starts or joins runs in token mode on a token
of the session's own (tests/conftest.py), whatever the shell exported, so no test passes
only after another one wrote ``~/.ray/auth_token``, none fails because the user exported
``RAY_AUTH_MODE=disabled``, and none reads or writes the user's ``~/.ray``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.procs import REPO, kill_marked, short_tmpdir

# What a subprocess prints after loading the suite's conftest, as a new test session
# would: the Ray settings every test then sees.
SHOW_SETTINGS = textwrap.dedent("""
    import json, os
    import tests.conftest
    print(json.dumps({k: os.environ.get(k) for k in
                      ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")}))
""")
# ... and then a Ray started as the session fixture starts it.
START_RAY = SHOW_SETTINGS + textwrap.dedent("""
    import ray
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    assert ray.get(ray.remote(lambda: 41 + 1).remote()) == 42
    ray.shutdown()
""")


def shell_env(home: str, mode: str | None) -> dict[str, str]:
    """The environment of a user's shell on a fresh machine: HOME an empty folder, no Ray
    token anywhere, RAY_AUTH_MODE as ``mode`` exported (None: not set)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["HOME"] = home
    env["PYTHONPATH"] = str(REPO)
    if mode is not None:
        env["RAY_AUTH_MODE"] = mode
    return env


@pytest.mark.parametrize("mode", [None, "disabled", "token"])
def test_the_session_runs_ray_on_a_token_of_its_own_whatever_the_shell_says(tmp_path, mode):
    home = tmp_path / "home"
    home.mkdir()
    env = shell_env(str(home), mode)
    env["RAY_AUTH_TOKEN_PATH"] = str(tmp_path / "someone-elses-token")
    env["RAY_ADDRESS"] = "127.0.0.1:1"
    proc = subprocess.run([sys.executable, "-c", SHOW_SETTINGS], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    settings = json.loads(proc.stdout.strip().splitlines()[-1])
    assert settings["RAY_AUTH_MODE"] == "token"
    assert len(settings["RAY_AUTH_TOKEN"] or "") >= 32
    assert settings["RAY_AUTH_TOKEN_PATH"] is None and settings["RAY_ADDRESS"] is None


def test_a_ray_the_suite_starts_leaves_home_empty(tmp_path):
    """On a fresh machine (HOME empty, nothing exported), a Ray started with the suite's
    settings works and writes nothing under HOME (Ray would write ~/.ray/auth_token)."""
    home = tmp_path / "home"
    home.mkdir()
    ray_tmp = short_tmpdir("swiso")
    env = shell_env(str(home), None)
    env["RAY_TMPDIR"] = ray_tmp
    try:
        proc = subprocess.run([sys.executable, "-c", START_RAY], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == []
    finally:
        kill_marked(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
