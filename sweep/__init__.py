"""sweep: parallel, cluster-scale hyperparameter sweeps on Ray.

Search spaces with the right priors, grid / random / quasi-random plans,
coarse-to-fine stages enqueued by themselves, and one Parquet results table.

Example:
    >>> import sweep
    >>> df = sweep.run("jobs/mlp.yaml")                      # doctest: +SKIP
    >>> space = {"lr": sweep.loguniform(1e-4, 1), "opt": sweep.choice(["sgd", "adam"])}
"""

from .errors import SpecError, SweepError
from .scheduler import execute, run
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
from .spec import Spec, load_spec

__version__ = "0.1.0"

__all__ = [
    "Space",
    "Spec",
    "SpecError",
    "SweepError",
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
    "run",
    "uniform",
]
