"""Plans: ask/tell objects that place a stage's trials in the unit cube.

Fixed plans (grid, random, Sobol, Latin hypercube) ignore what they are told; the
refines and ``bayes`` learn from every result. A plan never runs anything: the engine
asks it for candidates and tells it the records.

Example:
    >>> from sweep.plans import RandomPlan
    >>> from sweep.space import Space, uniform
    >>> plan = RandomPlan(Space({"x": uniform(0, 1)}), trials=3, seed=0)
    >>> len(plan.ask(5))
    3
"""

from .adaptive_refine import AdaptiveRefine
from .bayes import Bayes
from .fixed import (
    Candidate,
    Config,
    FixedPlan,
    Grid,
    LatinHypercubePlan,
    Plan,
    ProposingPlan,
    RandomPlan,
    SobolPlan,
    Truncated,
    distinct_sample,
    make_rng,
    sampler,
    seed_tuple,
)
from .refine import Anchor, AnchorRule, Box, Refine

__all__ = ["AdaptiveRefine", "Anchor", "AnchorRule", "Bayes", "Box", "Candidate", "Config",
           "FixedPlan", "Grid", "LatinHypercubePlan", "Plan", "ProposingPlan", "RandomPlan",
           "Refine", "SobolPlan", "Truncated", "distinct_sample", "make_rng", "sampler",
           "seed_tuple"]
