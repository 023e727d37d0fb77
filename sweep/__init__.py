"""sweep: parallel, cluster-scale hyperparameter sweeps on Ray.

Search spaces with the right priors, grid / random / quasi-random plans,
coarse-to-fine stages enqueued by themselves, and one Parquet results table.

Example:
    >>> import sweep
    >>> df = sweep.run("jobs/mlp.yaml")                      # doctest: +SKIP
    >>> space = {"lr": sweep.loguniform(1e-4, 1), "opt": sweep.choice(["sgd", "adam"])}
    >>> sweep.report(step=1, loss=0.5)    # inside an objective: an intermediate report
    >>> sweep.restore() is None           # the checkpoint to start from (None: fresh)
    True
"""

from typing import Any

from .core.errors import SpecError, SweepError
from .core.records import Report, TrialRecord
from .space import (
    Space,
    bernoulli,
    choice,
    constant,
    lognormal,
    lograndint,
    loguniform,
    normal,
    qloguniform,
    quniform,
    randint,
    uniform,
)
from .worker.trial_reports import TrialStopped, report, restore

__version__ = "0.1.0"

# Loaded on first use: Ray workers import sweep.worker.wrapper, and with it this package; they
# should not pay for pandas, pyarrow and the scheduler they never use.
_LAZY = {"run": "engine.runner", "execute": "engine.runner", "Spec": "spec.sweep_file",
         "load_spec": "spec.sweep_file"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'sweep' has no attribute {name!r}")

__all__ = [
    "Report",
    "Space",
    "Spec",
    "SpecError",
    "SweepError",
    "TrialRecord",
    "TrialStopped",
    "__version__",
    "bernoulli",
    "choice",
    "constant",
    "execute",
    "load_spec",
    "lognormal",
    "lograndint",
    "loguniform",
    "normal",
    "qloguniform",
    "quniform",
    "randint",
    "report",
    "restore",
    "run",
    "uniform",
]
