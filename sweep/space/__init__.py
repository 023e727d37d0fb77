"""The search space: distributions with the right priors, each mapped to a coordinate of
the unit cube and back (``distributions``), and the ``Space`` that holds them.

Example:
    >>> from sweep.space import Space, loguniform, choice
    >>> space = Space({"lr": loguniform(1e-4, 1), "opt": choice(["sgd", "adam"])})
    >>> space.from_unit([0.5, 0.9])["opt"]
    'adam'
"""

from .distributions import (
    DISTRIBUTIONS,
    REGISTRY,
    UNSUPPORTED,
    Bernoulli,
    Choice,
    Constant,
    Distinct,
    Distribution,
    LogNormal,
    LogRandInt,
    LogUniform,
    Narrowed,
    Normal,
    QLogUniform,
    QUniform,
    RandInt,
    Uniform,
    bernoulli,
    choice,
    constant,
    distinct,
    lognormal,
    lograndint,
    loguniform,
    normal,
    qloguniform,
    quniform,
    randint,
    scalar_kind,
    uniform,
    value_key,
)
from .search_space import Space

__all__ = ["DISTRIBUTIONS", "REGISTRY", "UNSUPPORTED", "Bernoulli", "Choice", "Constant",
           "Distinct", "Distribution", "LogNormal", "LogRandInt", "LogUniform", "Narrowed",
           "Normal", "QLogUniform", "QUniform", "RandInt", "Space", "Uniform", "bernoulli",
           "choice", "constant", "distinct", "lognormal", "lograndint", "loguniform", "normal",
           "qloguniform", "quniform", "randint", "scalar_kind", "uniform", "value_key"]
