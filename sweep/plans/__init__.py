"""Plans: ask/tell objects that place a stage's trials in the unit cube.

The interface and what every plan shares live in ``base`` (``Plan``, ``Candidate``, the
learning base class, the registry of plans by name); fixed plans (grid, random, Sobol,
Latin hypercube) in ``fixed``; the refines (``refine``, ``adaptive_refine``, sharing
``anchors`` and ``refine_options``) and ``bayes`` learn from every result, the adaptive
refine and bayes through the Gaussian-process ``surrogate``. A plan never runs
anything: the engine asks it for candidates and tells it the records.

Example:
    >>> from sweep.plans import RandomPlan
    >>> from sweep.space import Space, uniform
    >>> plan = RandomPlan(Space({"x": uniform(0, 1)}), n=3, seed=0)
    >>> len(plan.ask(5))
    3
"""

from .adaptive_refine import AdaptiveRefine
from .anchors import Anchor, AnchorRule, Box
from .base import (
    REGISTRY,
    Candidate,
    Config,
    Plan,
    ProposingPlan,
    StageSettings,
    make_rng,
    plan_class,
    register,
    seed_tuple,
)
from .bayes import Bayes
from .fixed import (
    FixedPlan,
    Grid,
    LatinHypercubePlan,
    RandomPlan,
    SobolPlan,
    Truncated,
    distinct_sample,
    sampler,
)
from .pbt import Mutation, PopulationBasedTraining
from .refine import Refine

__all__ = ["REGISTRY", "AdaptiveRefine", "Anchor", "AnchorRule", "Bayes", "Box", "Candidate",
           "Config", "FixedPlan", "Grid", "LatinHypercubePlan", "Mutation", "Plan",
           "PopulationBasedTraining", "ProposingPlan",
           "RandomPlan", "Refine", "SobolPlan", "StageSettings", "Truncated", "distinct_sample",
           "make_rng", "plan_class", "register", "sampler", "seed_tuple"]
