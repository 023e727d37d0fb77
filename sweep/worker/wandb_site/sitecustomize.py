"""sweep's W&B guard for a trial's command: ``PYTHONPATH`` puts this folder first in every
Python the command starts, so this runs at interpreter start. It installs
``sweep/worker/wandb_guard.py`` (loaded by path: that Python may not have sweep
installed), which keeps W&B offline whatever the script asks, then runs the
``sitecustomize`` this one shadows, if there is one, as the interpreter would have.

Example: with ``PYTHONPATH=<this folder>``, ``python -c "import wandb;
print(wandb.Settings(mode='online').mode)"`` prints ``offline``.
"""

import importlib.machinery
import importlib.util
import os
import sys


def _install_guard(here: str) -> None:
    path = os.path.join(os.path.dirname(here), "wandb_guard.py")
    spec = importlib.util.spec_from_file_location("_sweep_wandb_guard", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"no {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    module.install()


def _run_shadowed(here: str) -> None:
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


_HERE = os.path.dirname(os.path.abspath(__file__))
try:
    _install_guard(_HERE)
except Exception as exc:  # say so: W&B is then offline only by WANDB_MODE
    print(f"sweep: could not install the W&B offline guard: {type(exc).__name__}: {exc}",
          file=sys.stderr)
_run_shadowed(_HERE)
