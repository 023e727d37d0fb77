"""Search quality of sweep's plans at equal budgets, and the choice of refine defaults.

What it measures
----------------
Each *problem* is a search space plus an objective to minimise:

* four synthetic landscapes shaped like real tuning problems (log-scaled learning
  rate and weight decay, a few categorical axes, only two or three axes that
  matter, evaluation noise): ``convnet`` (val error; the lr optimum moves with the
  optimizer and batch size, lr and weight decay trade off, lr too high diverges),
  ``finetune`` (loss; the lr optimum rises with warmup and a cliff of divergence
  sits close above it), ``gbm`` (boosted trees; a diagonal ridge along
  lr x n_estimators, integer depth) and ``ppo`` (RL; two basins, the better one
  narrow, heavy noise). Their optimum is known analytically (each is built as
  "floor + non-negative penalties"), and it is checked numerically at start-up;
* the real MLP job (``jobs/mlp.py``, space of ``jobs/mlp.yaml``) at a fixed, low
  fidelity (2 epochs for every trial of every method, so methods compare fairly).
  Its reference optimum is the best ``val_error`` seen by any method.

Every method gets the same budget of trials (16, 32, 64, 128 by default) and is run
with many seeds. A method's result on one seed is the *true* value of the trial it
would pick (the best *observed* one; noise is a deterministic function of the seed
and the config, so a repeated config sees the same noise); its regret is that value
minus the optimum. Methods:

* ``grid``: a grid of about the budget's points (numeric axes get 3 levels first,
  then categorical axes all their values, then numeric axes more levels, in name
  order, while the product stays within the budget; other axes sit at their centre);
* ``random (uniform priors)``: random search with every log axis replaced by a
  linear one over the same raw bounds (the common mistake);
* ``random``: random search with the right priors -- the baseline (ratio 1.0);
* ``random x2``: random search with twice the budget -- the bar to meet;
* ``sobol``: scrambled Sobol points;
* ``c2f ...``: coarse-to-fine: a coarse stage (random, Sobol or grid) of part of the
  budget, then ``sweep.plans.Refine`` seeded with the coarse stage's top-k (ranked
  by the observed objective, ties by trial id) for the rest. The coarse random
  stage uses the same random stream as the ``random`` baseline, so the pair
  differs only in what happens after the coarse stage.

For every method and budget the script prints ``median regret / median regret of
random`` (below 1 is better than random search) and the share of paired seeds
where the method beats random (ties count half).

How the defaults are chosen
---------------------------
Three disjoint sets of seeds: *tuning* (0..), *confirmation* (500..) and *final*
(1000..). A recipe's score is the geometric mean, over the synthetic landscapes
and budgets, of its median regret ratio (one number from 16 noisy cells; a rule
such as "meets the target in every cell" would rank by the noisiest cell).

1. Tuning, phase 1: every box setting -- region ``each`` with shrink
   0.1/0.25/0.5, region ``hull`` with margin 0.1/0.25/0.5 x min_width
   0.02/0.05/0.1 -- x every top-k rule (a function of the refine stage's trials),
   after a random coarse stage of half the budget.
2. Tuning, phase 2: the best two ``each`` and two ``hull`` recipes, and
   sweep.spec's current defaults, x coarse share 25/50/75 % x coarse plan
   random/Sobol.
3. Confirmation: the top-scoring recipe (and the best of each region) against
   the incumbent -- sweep.spec's defaults with a random coarse half -- on fresh
   seeds. The best of ~90 recipes on the tuning seeds is flattered by luck, so a
   challenger replaces the incumbent only when it beats it on the fresh seeds by
   more than one bootstrap standard error (paired resampling of seeds).
4. Final tables on the final seeds for the chosen default, the other methods and
   variants of the default (other splits, the other coarse plan), then the
   "recommended defaults" line.

Noise matters: with 10-20 seeds a median regret ratio moves by +-0.3 from seed set
to seed set, so the defaults use 60 tuning seeds and 100 confirmation and final
seeds (the MLP: 10). The script prints figures and never asserts.

How to run
----------
From the repository root::

    python tests/bench/quality.py                 # full run (~7 CPU minutes)
    python tests/bench/quality.py --quick         # fewer seeds, MLP at 16/32/64
    python tests/bench/quality.py --no-mlp --seeds 20 --budgets 16,32

Results are deterministic for given seeds, whatever ``--workers`` is.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from sweep.plans import Grid, Plan, RandomPlan, Refine, Seed, SobolPlan
from sweep.space import (
    Bernoulli,
    Choice,
    Constant,
    Distribution,
    LogRandInt,
    LogUniform,
    RandInt,
    Space,
    Uniform,
)
from sweep.spec import (
    DEFAULT_MARGIN,
    DEFAULT_MIN_WIDTH,
    DEFAULT_REGION,
    DEFAULT_SHRINK,
    default_top_k,
)

Config = dict[str, Any]
ROOT = Path(__file__).resolve().parents[2]
TARGET_RATIO = 0.75
TARGET_WINS = 0.65
_NORMAL = statistics.NormalDist()
_TUNE_SEED0 = 0
_CONFIRM_SEED0 = 500
_FINAL_SEED0 = 1000

# ----------------------------------------------------------------- landscapes


def _bowl(q: float) -> float:
    """0 at a basin's centre, rising to 1 far away (far-off configs all fail alike)."""
    return 1.0 - math.exp(-0.5 * q)


def _between(floor: float, ceiling: float, q: float) -> float:
    """``floor`` at the optimum (q = 0), ``ceiling`` far from it."""
    return ceiling - (ceiling - floor) * (1.0 - _bowl(q))


_CONV_LR = {"sgd": -1.0, "adam": -3.0, "adamw": -2.8}  # log10 of the best lr
_CONV_WD = {"sgd": -3.5, "adam": -4.5, "adamw": -1.5}  # log10 of the best weight decay
_CONV_OPT = {"sgd": 0.0, "adam": 0.012, "adamw": 0.004}
_CONV_ACT = {"relu": 0.004, "gelu": 0.0, "tanh": 0.025}


def convnet(c: Mapping[str, Any]) -> float:
    """Validation error of an image classifier (0.04 at best, 0.9 = chance).

    lr and weight decay matter (a correlated valley: a larger lr wants less decay);
    their optimum depends on the optimizer, and lr scales with sqrt(batch size). An
    lr more than 1.2 decades above its optimum diverges. The other axes matter little.
    """
    opt = c["optimizer"]
    lr = math.log10(c["lr"]) - _CONV_LR[opt] - 0.5 * math.log10(c["batch_size"] / 128)
    if lr > 1.2:
        return 0.9
    wd = math.log10(c["weight_decay"]) - _CONV_WD[opt]
    q = (lr / 0.45) ** 2 + ((wd + 0.5 * lr) / 0.8) ** 2
    small = _CONV_OPT[opt] + _CONV_ACT[c["activation"]] + (0.0 if c["augment"] else 0.01)
    small += 0.01 * ((c["dropout"] - 0.25) / 0.35) ** 2
    if opt == "sgd":
        small += 0.02 * ((c["momentum"] - 0.9) / 0.4) ** 2
    return _between(0.04 + small, 0.9, q)


CONVNET_SPACE = Space({
    "lr": LogUniform(1e-5, 1.0),
    "weight_decay": LogUniform(1e-6, 1e-1),
    "momentum": Uniform(0.5, 0.99),
    "dropout": Uniform(0.0, 0.6),
    "batch_size": Choice([32, 64, 128, 256, 512]),
    "optimizer": Choice(["sgd", "adam", "adamw"]),
    "activation": Choice(["relu", "gelu", "tanh"]),
    "augment": Bernoulli(0.5),
})
CONVNET_BEST = {"lr": 0.1, "weight_decay": 10**-3.5, "momentum": 0.9, "dropout": 0.25,
                "batch_size": 128, "optimizer": "sgd", "activation": "gelu", "augment": True}

_FT_SCHEDULE = {"cosine": 0.0, "linear": 0.01, "constant": 0.06}
_FT_BETA2 = {0.95: 0.005, 0.98: 0.0, 0.999: 0.02}


def finetune(c: Mapping[str, Any]) -> float:
    """Eval loss of a transformer fine-tune (2.2 at best, 4.0 when nothing is learnt).

    The best lr rises with warmup and batch size; a little above it training
    diverges (loss 8). Warmup matters too; schedule, beta2, label smoothing and
    weight decay matter little.
    """
    warm = c["warmup"]
    shift = 0.5 * math.log10(c["batch_size"] / 32)
    log_lr = math.log10(c["lr"])
    if log_lr > -3.6 + 3.0 * warm + shift:
        return 8.0
    x = log_lr - (-4.5 + 2.0 * warm + shift)
    q = (x / 0.35) ** 2 + ((warm - 0.08) / 0.12) ** 2
    small = _FT_SCHEDULE[c["schedule"]] + _FT_BETA2[c["beta2"]]
    small += 0.03 * ((c["label_smoothing"] - 0.1) / 0.1) ** 2
    small += 0.01 * ((math.log10(c["weight_decay"]) + 1.5) / 1.5) ** 2
    return _between(2.2 + small, 4.0, q)


FINETUNE_SPACE = Space({
    "lr": LogUniform(1e-6, 1e-2),
    "warmup": Uniform(0.0, 0.3),
    "weight_decay": LogUniform(1e-4, 1.0),
    "batch_size": LogRandInt(8, 256),
    "schedule": Choice(["cosine", "linear", "constant"]),
    "beta2": Choice([0.95, 0.98, 0.999]),
    "label_smoothing": Uniform(0.0, 0.2),
})
FINETUNE_BEST = {"lr": 10 ** (-4.5 + 0.16), "warmup": 0.08, "weight_decay": 10**-1.5,
                 "batch_size": 32, "schedule": "cosine", "beta2": 0.98, "label_smoothing": 0.1}


def gbm(c: Mapping[str, Any]) -> float:
    """Validation loss of gradient-boosted trees (0.25 at best, 0.4 far off).

    Only lr x n_estimators (a diagonal ridge: lr * n near 15, a slight preference for
    lr near 0.02) and max_depth matter much; the regularisers matter a little.
    """
    log_lr = math.log10(c["learning_rate"])
    total = log_lr + math.log10(c["n_estimators"]) - math.log10(15.0)
    along = log_lr - math.log10(0.02)
    q = (total / 0.25) ** 2 + along**2 + ((c["max_depth"] - 6) / 2.5) ** 2
    small = 0.004 * ((c["subsample"] - 0.8) / 0.3) ** 2
    small += 0.004 * ((c["colsample_bytree"] - 0.6) / 0.3) ** 2
    small += 0.005 * (math.log10(c["reg_lambda"]) / 2.0) ** 2
    small += 0.003 * ((math.log10(c["min_child_weight"]) - 0.5) / 1.5) ** 2
    small += 0.002 if c["grow_policy"] == "lossguide" else 0.0
    return _between(0.25 + small, 0.4, q)


GBM_SPACE = Space({
    "learning_rate": LogUniform(1e-3, 0.5),
    "n_estimators": LogRandInt(50, 3000),
    "max_depth": RandInt(2, 12),
    "subsample": Uniform(0.5, 1.0),
    "colsample_bytree": Uniform(0.3, 1.0),
    "reg_lambda": LogUniform(1e-3, 100.0),
    "min_child_weight": LogUniform(0.1, 100.0),
    "grow_policy": Choice(["depthwise", "lossguide"]),
})
GBM_BEST = {"learning_rate": 0.02, "n_estimators": 750, "max_depth": 6, "subsample": 0.8,
            "colsample_bytree": 0.6, "reg_lambda": 1.0, "min_child_weight": 10**0.5,
            "grow_policy": "depthwise"}

_PPO_GAMMA = {0.99: 0.0, 0.995: 0.01, 0.999: 0.03}
_PPO_STEPS = {256: 0.03, 512: 0.01, 1024: 0.005, 2048: 0.0}


def ppo(c: Mapping[str, Any]) -> float:
    """1 - normalised return of a PPO agent (0.1 at best, 1 = no learning).

    Two basins in (lr, entropy coefficient): a broad one worth 0.7 and a narrow one
    worth 0.9 far from it. The other axes matter little; the noise is heavy.
    """
    lr, ent = math.log10(c["lr"]), math.log10(c["ent_coef"])
    broad = 0.7 * (1.0 - _bowl(((lr + 3.5) / 0.6) ** 2 + ((ent + 2.5) / 1.0) ** 2))
    narrow = 0.9 * (1.0 - _bowl(((lr + 4.3) / 0.25) ** 2 + ((ent + 4.0) / 0.5) ** 2))
    small = _PPO_GAMMA[c["gamma"]] + _PPO_STEPS[c["n_steps"]]
    small += 0.02 * ((c["clip_range"] - 0.2) / 0.2) ** 2
    small += 0.02 * ((c["n_epochs"] - 10) / 10) ** 2
    small += 0.01 * ((c["gae_lambda"] - 0.95) / 0.15) ** 2
    return 1.0 - max(broad, narrow) + small


PPO_SPACE = Space({
    "lr": LogUniform(1e-5, 1e-2),
    "ent_coef": LogUniform(1e-5, 1e-1),
    "gamma": Choice([0.99, 0.995, 0.999]),
    "clip_range": Uniform(0.1, 0.4),
    "n_steps": Choice([256, 512, 1024, 2048]),
    "n_epochs": RandInt(3, 20),
    "gae_lambda": Uniform(0.8, 1.0),
})
PPO_BEST = {"lr": 10**-4.3, "ent_coef": 1e-4, "gamma": 0.99, "clip_range": 0.2,
            "n_steps": 2048, "n_epochs": 10, "gae_lambda": 0.95}


def mlp_val_error(c: Mapping[str, Any]) -> float:
    """``val_error`` of ``jobs/mlp.py`` (imported lazily: ``jobs`` is not installed)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from jobs.mlp import train

    return float(train(c)["val_error"])


def _mlp_space() -> Space:
    from sweep.spec import load_spec

    space = load_spec(ROOT / "jobs" / "mlp.yaml").space
    return space.replace(epochs=Constant(2), seed=Constant(0))


# ------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """A space and an objective; ``optimum`` None means "best value seen"."""

    name: str
    space: Space
    truth: Callable[[Mapping[str, Any]], float]
    noise: float
    optimum: float | None
    best: Config | None = None


def _problems() -> dict[str, Problem]:
    out = {
        "convnet": Problem("convnet", CONVNET_SPACE, convnet, 0.004, convnet(CONVNET_BEST),
                           CONVNET_BEST),
        "finetune": Problem("finetune", FINETUNE_SPACE, finetune, 0.01,
                            finetune(FINETUNE_BEST), FINETUNE_BEST),
        "gbm": Problem("gbm", GBM_SPACE, gbm, 0.002, gbm(GBM_BEST), GBM_BEST),
        "ppo": Problem("ppo", PPO_SPACE, ppo, 0.03, ppo(PPO_BEST), PPO_BEST),
    }
    out["mlp"] = Problem("mlp", _mlp_space(), mlp_val_error, 0.0, None)
    return out


PROBLEMS = _problems()
SYNTHETIC = ("convnet", "finetune", "gbm", "ppo")


def _key(config: Mapping[str, Any]) -> str:
    """A config's identity (spaces keep their names sorted, so plain repr is stable)."""
    return repr(tuple(config.items()))


def _gauss(seed: int, config: Mapping[str, Any]) -> float:
    """A standard normal draw fixed by (seed, config): the same on every run and process."""
    digest = hashlib.blake2b(f"{seed}:{_key(config)}".encode(), digest_size=8).digest()
    u = (int.from_bytes(digest, "little") + 0.5) / 2.0**64
    return _NORMAL.inv_cdf(u)


_CACHE: dict[str, float] = {}  # MLP values by config (the job is deterministic)


class Evaluator:
    """Scores configs of one problem for one seed: (observed, true) values."""

    def __init__(self, problem: Problem, seed: int):
        self.problem = problem
        self.seed = seed

    def true(self, config: Mapping[str, Any]) -> float:
        if self.problem.optimum is not None:  # synthetic: cheaper to compute than to cache
            return self.problem.truth(config)
        key = _key(config)
        value = _CACHE.get(key)
        if value is None:
            value = _CACHE[key] = self.problem.truth(config)
        return value

    def __call__(self, config: Mapping[str, Any]) -> tuple[float, float]:
        true = self.true(config)
        if not self.problem.noise:
            return true, true
        return true + self.problem.noise * _gauss(self.seed, config), true


@dataclass
class Trial:
    trial_id: str
    params: Config
    observed: float
    true: float


def _run(evaluate: Evaluator, configs: Iterable[Config], prefix: str) -> list[Trial]:
    out = []
    for i, config in enumerate(configs):
        observed, true = evaluate(config)
        out.append(Trial(f"{prefix}{i:04d}", config, observed, true))
    return out


def _ranked(trials: Sequence[Trial]) -> list[Trial]:
    """Best first by the observed objective, ties by trial id (sweep.ranking's rule)."""
    return sorted(trials, key=lambda t: (t.observed, t.trial_id))


def _picked(trials: Sequence[Trial]) -> float:
    """True value of the trial a user would pick: the best observed one."""
    return _ranked(trials)[0].true


# ---------------------------------------------------------------------- plans


def grid_plan(space: Space, budget: int) -> Grid:
    """A grid of at most ``budget`` points (about that many) over the whole space.

    Numeric axes get 3 levels first, then categorical axes all their values, then
    numeric axes one more level each in turn, always in name order and only while
    the product stays within the budget; the other axes sit at their centre.
    """
    levels = dict.fromkeys(space.dims, 1)
    numeric = [n for n in space.dims if not isinstance(space[n], Choice)]
    categorical = [n for n in space.dims if isinstance(space[n], Choice)]

    def cap(name: str) -> int:
        card = space[name].cardinality
        return card if card is not None else 10**6

    def grow(name: str, to: int) -> bool:
        to = min(to, cap(name))
        if to <= levels[name] or math.prod({**levels, name: to}.values()) > budget:
            return False
        levels[name] = to
        return True

    for name in numeric:
        grow(name, 3)
    for name in categorical:
        grow(name, cap(name))
    while any([grow(name, levels[name] + 1) for name in numeric]):
        pass
    values: dict[str, list[Any]] = {}
    for name in space.dims:
        dist = space[name]
        if levels[name] == 1:
            values[name] = [dist.from_unit(0.5)]
        elif isinstance(dist, Choice):
            values[name] = dist.support()
        else:
            values[name] = dist.grid_values(levels[name])
    return Grid(space, values=values)


def linear_priors(space: Space) -> Space:
    """The space with every log axis made linear over the same raw bounds."""
    swap: dict[str, Distribution] = {}
    for name in space.dims:
        dist = space[name]
        if isinstance(dist, LogUniform):
            swap[name] = Uniform(dist.lo, dist.hi)
        elif isinstance(dist, LogRandInt):
            swap[name] = RandInt(dist.lo, dist.hi)
    return space.replace(**swap)


# top_k as a function of the refine stage's trials.
TOP_K_RULES: dict[str, Callable[[int], int]] = {
    "1": lambda n: 1,
    "max(1, min(4, trials // 16))": lambda n: max(1, min(4, n // 16)),
    "max(1, min(4, trials // 8))": lambda n: max(1, min(4, n // 8)),
    "max(1, min(8, trials // 4))": lambda n: max(1, min(8, n // 4)),
    "max(2, min(8, trials // 8))": lambda n: max(2, min(8, n // 8)),
}
# How sweep.spec picks top_k today (n = the refine stage's trials): the rule that
# agrees with sweep.spec.default_top_k on every stage size.
SPEC_TOP_K = next(
    (name for name, rule in TOP_K_RULES.items()
     if all(rule(n) == default_top_k(n) for n in range(1, 513))),
    "max(1, min(4, trials // 8))",
)


@dataclass(frozen=True)
class C2F:
    """One coarse-to-fine recipe: coarse plan and share, then Refine settings."""

    region: str = DEFAULT_REGION
    shrink: float = DEFAULT_SHRINK
    margin: float = DEFAULT_MARGIN
    min_width: float = DEFAULT_MIN_WIDTH
    top_k: str = SPEC_TOP_K
    coarse_share: float = 0.5
    coarse: str = "random"

    def label(self) -> str:
        box = (f"shrink={self.shrink:g}" if self.region == "each"
               else f"margin={self.margin:g} min_width={self.min_width:g}")
        return (f"{self.coarse}{round(100 * self.coarse_share)}% -> {self.region} {box} "
                f"top_k={self.top_k}")


def _coarse_plan(space: Space, kind: str, n: int, seed: int) -> Plan:
    if kind == "grid":
        return grid_plan(space, n)
    if kind == "sobol":
        return SobolPlan(space, n, (seed, 2))
    # The random baseline's stream: the coarse stage is the baseline's first n trials.
    return RandomPlan(space, n, (seed, 1))


def _refine(space: Space, evaluate: Evaluator, coarse: Sequence[Trial], recipe: C2F,
            fine: int, seed: int) -> list[Trial]:
    if fine <= 0:
        return []
    k = TOP_K_RULES[recipe.top_k](fine)
    seeds = [Seed(t.trial_id, t.params) for t in _ranked(coarse)[:k]]
    plan = Refine(space, seeds, trials=fine, region=recipe.region, shrink=recipe.shrink,
                  margin=recipe.margin, min_width=recipe.min_width, seed=(seed, 3))
    return _run(evaluate, plan, "f")


def _split(budget: int, share: float) -> tuple[int, int]:
    coarse = min(budget - 1, max(1, round(budget * share)))
    return coarse, budget - coarse


def coarse_to_fine(problem: Problem, evaluate: Evaluator, budget: int, recipe: C2F,
                   seed: int) -> float:
    n_coarse, n_fine = _split(budget, recipe.coarse_share)
    coarse = _run(evaluate, _coarse_plan(problem.space, recipe.coarse, n_coarse, seed), "c")
    fine = _refine(problem.space, evaluate, coarse, recipe, n_fine, seed)
    return _picked(coarse + fine)


# --------------------------------------------------------------------- tuning


SHARES = (0.25, 0.5, 0.75)
COARSE = ("random", "sobol")


def box_recipes() -> list[C2F]:
    """Phase 1: every box setting x every top-k rule, after a random coarse half."""
    boxes: list[dict[str, Any]] = [{"region": "each", "shrink": s} for s in (0.1, 0.25, 0.5)]
    boxes += [{"region": "hull", "margin": m, "min_width": w}
              for m in (0.1, 0.25, 0.5) for w in (0.02, 0.05, 0.1)]
    return [C2F(top_k=k, coarse_share=0.5, coarse="random", **box)
            for box in boxes for k in TOP_K_RULES]


def split_recipes(finalists: Sequence[C2F]) -> list[C2F]:
    """Phase 2: the finalists of phase 1 x every coarse share x every coarse plan."""
    return [replace(r, coarse_share=s, coarse=c) for r in finalists for s in SHARES
            for c in COARSE]


def _tune_task(args: tuple[str, int, tuple[int, ...], tuple[C2F, ...]]
               ) -> tuple[str, int, dict[tuple[str, int], float]]:
    """Values picked by random and by every recipe, for one problem and seed."""
    name, seed, budgets, recipes = args
    problem = PROBLEMS[name]
    evaluate = Evaluator(problem, seed)
    out: dict[tuple[str, int], float] = {}
    for budget in budgets:
        out["random", budget] = _picked(
            _run(evaluate, RandomPlan(problem.space, budget, (seed, 1)), "r"))
        coarse_runs: dict[tuple[str, float], list[Trial]] = {}
        for recipe in recipes:
            n_coarse, n_fine = _split(budget, recipe.coarse_share)
            ckey = (recipe.coarse, recipe.coarse_share)
            if ckey not in coarse_runs:
                plan = _coarse_plan(problem.space, recipe.coarse, n_coarse, seed)
                coarse_runs[ckey] = _run(evaluate, plan, "c")
            coarse = coarse_runs[ckey]
            fine = _refine(problem.space, evaluate, coarse, recipe, n_fine, seed)
            out[recipe.label(), budget] = _picked(coarse + fine)
    return name, seed, out


@dataclass(frozen=True)
class Method:
    name: str
    kind: str  # grid | random | uniform | random2 | sobol | c2f
    recipe: C2F | None = None
    mlp: bool = True  # also run on the (slow) MLP job


def _final_task(args: tuple[str, int, tuple[int, ...], tuple[Method, ...]]
                ) -> tuple[str, int, dict[tuple[str, int], float]]:
    name, seed, budgets, methods = args
    problem = PROBLEMS[name]
    evaluate = Evaluator(problem, seed)
    out: dict[tuple[str, int], float] = {}
    space = problem.space
    for budget in budgets:
        for m in methods:
            if m.kind == "grid":
                value = _picked(_run(evaluate, grid_plan(space, budget), "g"))
            elif m.kind == "random":
                value = _picked(_run(evaluate, RandomPlan(space, budget, (seed, 1)), "r"))
            elif m.kind == "random2":
                value = _picked(_run(evaluate, RandomPlan(space, 2 * budget, (seed, 1)), "r"))
            elif m.kind == "uniform":
                plan = RandomPlan(linear_priors(space), budget, (seed, 1))
                value = _picked(_run(evaluate, plan, "u"))
            elif m.kind == "sobol":
                value = _picked(_run(evaluate, SobolPlan(space, budget, (seed, 2)), "s"))
            elif m.recipe is not None:
                value = coarse_to_fine(problem, evaluate, budget, m.recipe, seed)
            else:
                raise ValueError(f"unknown method kind {m.kind!r}")
            out[m.name, budget] = value
    return name, seed, out


def _single_threaded_blas() -> None:
    """One BLAS thread per process: the MLP's small matrices gain nothing from more, and
    idle BLAS threads spinning against the worker processes cost up to 4x the CPU."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # for spawned workers
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional; numpy is already loaded, so the variables come late
        return
    threadpool_limits(1)  # this process and forked workers


def _cpu_seconds() -> float:
    """CPU time of this process and its finished workers."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _pool_map(fn: Callable[[Any], Any], tasks: list[Any], workers: int) -> list[Any]:
    if workers <= 1 or len(tasks) <= 1:
        return [fn(t) for t in tasks]
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(workers) as pool:
        return pool.map(fn, tasks, chunksize=1)


# --------------------------------------------------------------- statistics

Results = dict[str, dict[int, dict[tuple[str, int], float]]]  # problem -> seed -> values


def _collect(rows: Iterable[tuple[str, int, dict[tuple[str, int], float]]]) -> Results:
    out: Results = {}
    for name, seed, values in rows:
        out.setdefault(name, {})[seed] = values
    return out


def _reference(problem: Problem, per_seed: Mapping[int, Mapping[tuple[str, int], float]]
               ) -> float:
    if problem.optimum is not None:
        return problem.optimum
    return min(v for values in per_seed.values() for v in values.values())


@dataclass
class Cell:
    ratio: float
    wins: float


def compare(results: Results, problem: str, method: str, budget: int) -> Cell:
    """Median regret over random's, and the share of seeds beating random (ties half)."""
    per_seed = results[problem]
    ref = _reference(PROBLEMS[problem], per_seed)
    seeds = sorted(per_seed)
    mine = np.array([per_seed[s][method, budget] - ref for s in seeds])
    base = np.array([per_seed[s]["random", budget] - ref for s in seeds])
    num, den = float(np.median(mine)), float(np.median(base))
    ratio = num / den if den > 0 else (1.0 if num <= 0 else math.inf)
    wins = float(np.mean(np.where(mine < base, 1.0, np.where(mine == base, 0.5, 0.0))))
    return Cell(ratio, wins)


def _meets(cell: Cell) -> bool:
    return cell.ratio <= TARGET_RATIO and cell.wins >= TARGET_WINS


def _geomean(xs: Iterable[float]) -> float:
    logs = [math.log(max(x, 1e-3)) for x in xs]
    return math.exp(sum(logs) / len(logs))


@dataclass
class Score:
    recipe: C2F
    score: float
    worst: float
    min_wins: float
    cells_met: int
    cells: int


def score_recipes(results: Results, recipes: Sequence[C2F], problems: Sequence[str],
                  budgets: Sequence[int]) -> list[Score]:
    """Recipes best first by score (the geometric mean of the cells' median ratios).

    The score averages 16 noisy cells; a rule such as "meets the target in every
    cell first" would rank by the noisiest cell and pick by luck.
    """
    scores = []
    for recipe in recipes:
        cells = [compare(results, p, recipe.label(), b) for p in problems for b in budgets]
        scores.append(Score(recipe, _geomean(c.ratio for c in cells),
                            max(c.ratio for c in cells), min(c.wins for c in cells),
                            sum(_meets(c) for c in cells), len(cells)))
    scores.sort(key=lambda s: (s.score, s.recipe.label()))
    return scores


def bootstrap_scores(results: Results, recipes: Sequence[C2F], problems: Sequence[str],
                     budgets: Sequence[int], reps: int = 300) -> dict[str, np.ndarray]:
    """Each recipe's score on ``reps`` bootstrap resamples of the seeds (the same
    resamples for every recipe, so differences between recipes stay paired)."""
    labels = [r.label() for r in recipes]
    logs = np.zeros((len(labels), reps))
    rng = np.random.default_rng(12345)
    for p in problems:
        per_seed = results[p]
        seeds = sorted(per_seed)
        ref = _reference(PROBLEMS[p], per_seed)
        idx = rng.integers(0, len(seeds), (reps, len(seeds)))
        for b in budgets:
            base = np.array([per_seed[s]["random", b] - ref for s in seeds])
            mine = np.array([[per_seed[s][label, b] - ref for s in seeds] for label in labels])
            den = np.median(base[idx], axis=1)  # (reps,)
            num = np.median(mine[:, idx], axis=2)  # (recipes, reps)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(den > 0, num / den, np.where(num <= 0, 1.0, np.inf))
            logs += np.log(np.maximum(ratio, 1e-3))
    scores = np.exp(logs / (len(problems) * len(budgets)))
    return dict(zip(labels, scores))


def one_se_choice(scores: Sequence[Score], boot: Mapping[str, np.ndarray],
                  incumbent: C2F) -> tuple[C2F, str]:
    """The best-scoring recipe, unless ``incumbent`` is within one bootstrap standard
    error of it (then the incumbent: a change must earn its place beyond the noise)."""
    scores = sorted(scores, key=lambda s: (s.score, s.recipe.label()))
    best = scores[0]
    mine = next((s for s in scores if s.recipe == incumbent), None)
    if mine is None or mine.recipe == best.recipe:
        return best.recipe, "it scores best"
    gap = mine.score - best.score
    se = float(np.std(boot[mine.recipe.label()] - boot[best.recipe.label()]))
    why = (f"score {mine.score:.3f} vs the best {best.score:.3f} ({best.recipe.label()}): "
           f"gap {gap:.3f}, one bootstrap SE {se:.3f}")
    if gap <= se:
        return incumbent, f"within one SE of the best, kept: {why}"
    return best.recipe, f"beaten by more than one SE, replaced: {why}"


# ------------------------------------------------------------------ printing


def _fmt_cell(cell: Cell) -> str:
    ratio = "  inf" if math.isinf(cell.ratio) else f"{cell.ratio:5.2f}"
    mark = "*" if _meets(cell) else " "
    return f"{ratio} {100 * cell.wins:3.0f}%{mark}"


def print_tuning(scores: Sequence[Score], top: int, knobs: bool = True) -> None:
    top = min(top, len(scores))
    print(f"\nTop {top} of {len(scores)} refine recipes (score = geometric mean over "
          f"landscapes x budgets of median regret / random's; worst = largest ratio; "
          f"min wins = lowest share of seeds beating random; met = cells meeting the target)")
    print(f"{'#':>3} {'score':>6} {'worst':>6} {'min wins':>8} {'met':>6}  recipe")
    for i, s in enumerate(scores[:top], 1):
        print(f"{i:>3} {s.score:6.3f} {s.worst:6.2f} {100 * s.min_wins:7.0f}% "
              f"{s.cells_met:>2}/{s.cells:<3}  {s.recipe.label()}")
    if not knobs:
        return
    print("\nEach knob on its own (best and median score over the recipes with that value):")
    getters: dict[str, Callable[[C2F], Any]] = {
        "region": lambda r: r.region,
        "shrink (each)": lambda r: r.shrink if r.region == "each" else None,
        "margin (hull)": lambda r: r.margin if r.region == "hull" else None,
        "min_width (hull)": lambda r: r.min_width if r.region == "hull" else None,
        "top_k": lambda r: r.top_k,
        "coarse share": lambda r: f"{round(100 * r.coarse_share)}%",
        "coarse plan": lambda r: r.coarse,
    }
    for knob, get in getters.items():
        groups: dict[Any, list[float]] = {}
        for s in scores:
            value = get(s.recipe)
            if value is not None:
                groups.setdefault(value, []).append(s.score)
        if len(groups) < 2:
            continue
        parts = [f"{v}: best {min(xs):.3f} median {statistics.median(xs):.3f}"
                 for v, xs in groups.items()]
        print(f"  {knob:<17} " + " | ".join(parts))


def print_table(results: Results, problem: str, methods: Sequence[Method],
                budgets: Sequence[int], seeds: int) -> list[tuple[int, Cell]]:
    """One problem's table; returns the default recipe's cells."""
    ref = _reference(PROBLEMS[problem], results[problem])
    kind = "optimum" if PROBLEMS[problem].optimum is not None else "best seen (reference)"
    print(f"\n{problem}: {seeds} seeds, {kind} = {ref:.4f}; cell = median regret / random's, "
          f"share of seeds beating random (* = meets <= {TARGET_RATIO} and "
          f">= {100 * TARGET_WINS:.0f}%)")
    width = max(len(m.name) for m in methods)
    print(" " * width + "".join(f"{'B=' + str(b):>13}" for b in budgets))
    default_cells = []
    for m in methods:
        cells = [compare(results, problem, m.name, b) for b in budgets]
        print(f"{m.name:<{width}}" + "".join(f"{_fmt_cell(c):>13}" for c in cells))
        if m.name.startswith("c2f DEFAULT"):
            default_cells = list(zip(budgets, cells))
    grid_sizes = ", ".join(f"{b}->{len(grid_plan(PROBLEMS[problem].space, b))}"
                           for b in budgets)
    print(f"{'':<{width}}  (grid points per budget: {grid_sizes})")
    return default_cells


# ---------------------------------------------------------------------- main


def check_optima() -> None:
    """Numerical check that no random or perturbed config beats the analytic optimum."""
    for name in SYNTHETIC:
        problem = PROBLEMS[name]
        if problem.best is None or problem.optimum is None:
            continue
        best = min(problem.truth(c) for c in RandomPlan(problem.space, 4000, 99))
        centre = problem.space.to_unit(problem.best)
        rng = np.random.default_rng(7)
        local = min(
            problem.truth(problem.space.from_unit(np.clip(centre + rng.normal(0, d, len(centre)),
                                                          0, 1)))
            for d in (0.003, 0.01, 0.03) for _ in range(500)
        )
        found = min(best, local)
        flag = "ok" if found >= problem.optimum - 1e-9 else "BELOW THE OPTIMUM"
        print(f"  {name:<9} optimum {problem.optimum:.4f}; best of 4000 random "
              f"{best:.4f}; best of 1500 near the optimum {local:.4f}  {flag}")


def _methods(default: C2F, other: C2F, top_score: C2F) -> list[Method]:
    shares = sorted({0.25, 0.5, 0.75} - {default.coarse_share})
    out = [
        Method("grid", "grid"),
        Method("random (uniform priors)", "uniform"),
        Method("random", "random"),
        Method("random x2 budget", "random2"),
        Method("sobol", "sobol", mlp=False),
        Method(f"c2f DEFAULT ({default.coarse} {round(100 * default.coarse_share)}% -> "
               f"{default.region})", "c2f", default),
        Method(f"c2f {other.region} ({other.coarse} {round(100 * other.coarse_share)}% -> "
               f"{other.region})", "c2f", other),
        Method(f"c2f grid {round(100 * default.coarse_share)}% -> {default.region}", "c2f",
               replace(default, coarse="grid")),
    ]
    out += [Method(f"c2f default, split {round(100 * s)}/{round(100 * (1 - s))}", "c2f",
                   replace(default, coarse_share=s), mlp=False) for s in shares]
    out.append(Method(f"c2f default, {'sobol' if default.coarse == 'random' else 'random'} "
                      f"coarse", "c2f",
                      replace(default, coarse="sobol" if default.coarse == "random" else "random"),
                      mlp=False))
    if top_score != default:
        out.append(Method(f"c2f top tuning score ({top_score.coarse} "
                          f"{round(100 * top_score.coarse_share)}% -> {top_score.region})",
                          "c2f", top_score, mlp=False))
    if C2F() != default:
        out.append(Method("c2f sweep.spec defaults today", "c2f", C2F(), mlp=False))
    return out


def _seeds(first: int, n: int) -> list[int]:
    return list(range(first, first + n))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=None,
                        help="seeds of the final synthetic tables (default 100; 40 with --quick)")
    parser.add_argument("--tune-seeds", type=int, default=None,
                        help="seeds for choosing the refine defaults (default 60; 20 with --quick)")
    parser.add_argument("--confirm-seeds", type=int, default=None,
                        help="fresh seeds to confirm the choice on (default: --seeds)")
    parser.add_argument("--budgets", default="16,32,64,128", help="comma-separated budgets")
    parser.add_argument("--mlp-seeds", type=int, default=None,
                        help="seeds of the MLP table (default 10; 5 with --quick)")
    parser.add_argument("--mlp-budgets", default=None,
                        help="budgets of the MLP table (default --budgets; 16,32,64 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer seeds and a smaller MLP table")
    parser.add_argument("--no-mlp", action="store_true", help="skip the MLP job")
    parser.add_argument("--no-tune", action="store_true",
                        help="skip tuning and confirmation: DEFAULT = sweep.spec's defaults")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--top", type=int, default=15, help="tuning rows to print")
    args = parser.parse_args(argv)
    budgets = tuple(int(b) for b in args.budgets.split(","))
    seeds = args.seeds or (40 if args.quick else 100)
    tune_seeds = args.tune_seeds or (20 if args.quick else 60)
    confirm_seeds = args.confirm_seeds or seeds
    mlp_seeds = args.mlp_seeds or (5 if args.quick else 10)
    mlp_budgets = tuple(int(b) for b in (args.mlp_budgets or
                                         ("16,32,64" if args.quick else args.budgets)).split(","))
    _single_threaded_blas()
    started = time.perf_counter()
    print(f"sweep search-quality benchmark: budgets {list(budgets)}, {args.workers} workers")
    print("Analytic optima, checked numerically:")
    check_optima()

    if args.no_tune:
        default = top_score = C2F()
        other = replace(default, region="hull" if default.region == "each" else "each")
    else:
        tune = _seeds(_TUNE_SEED0, tune_seeds)
        phase1 = box_recipes()
        incumbent = C2F()  # sweep.spec's defaults, random coarse stage of half the budget
        hull_incumbent = replace(incumbent, region="hull")
        phase1 += [r for r in (incumbent, hull_incumbent) if r not in phase1]
        print(f"\nTuning phase 1: {len(phase1)} refine recipes (box x top-k, random coarse "
              f"stage of half the budget) x {len(SYNTHETIC)} landscapes x {tune_seeds} "
              f"tuning seeds ({tune[0]}..{tune[-1]})")
        tasks = [(p, s, budgets, tuple(phase1)) for p in SYNTHETIC for s in tune]
        tuned = _collect(_pool_map(_tune_task, tasks, args.workers))
        scores1 = score_recipes(tuned, phase1, SYNTHETIC, budgets)
        print_tuning(scores1, args.top)
        finalists = [s.recipe for s in scores1 if s.recipe.region == "each"][:2]
        finalists += [s.recipe for s in scores1 if s.recipe.region == "hull"][:2]
        finalists += [r for r in (incumbent, hull_incumbent) if r not in finalists]
        phase2 = split_recipes(finalists)
        print(f"\nTuning phase 2: the best two 'each' and two 'hull' recipes and sweep.spec's "
              f"defaults x coarse share {'/'.join(f'{round(100 * x)}%' for x in SHARES)} x "
              f"coarse plan {'/'.join(COARSE)} ({len(phase2)} recipes, same seeds)")
        fresh = tuple(r for r in phase2 if r not in phase1)
        tasks = [(p, s, budgets, fresh) for p in SYNTHETIC for s in tune]
        for name, seed, values in _pool_map(_tune_task, tasks, args.workers):
            tuned[name][seed].update(values)
        scores2 = score_recipes(tuned, phase2, SYNTHETIC, budgets)
        print_tuning(scores2, len(scores2))
        ranked = score_recipes(tuned, list(dict.fromkeys([*phase1, *phase2])), SYNTHETIC,
                               budgets)
        top_score = ranked[0].recipe
        best_of = {region: next(x.recipe for x in ranked if x.recipe.region == region)
                   for region in ("each", "hull")}
        held = {region: replace(incumbent, region=region) for region in ("each", "hull")}
        candidates = list(dict.fromkeys([top_score, incumbent, *best_of.values(),
                                         *held.values()]))
        confirm = _seeds(_CONFIRM_SEED0, confirm_seeds)
        print(f"\nConfirmation on fresh seeds ({confirm[0]}..{confirm[-1]}): the top-scoring "
              f"recipe of the tuning, and the best of each region, against sweep.spec's "
              f"defaults (with a random coarse half); a challenger replaces the incumbent only "
              f"when it beats it by more than one bootstrap standard error (the tuning's best "
              f"of {len(ranked)} is flattered by luck; fresh seeds are not)")
        tasks = [(p, s, budgets, tuple(candidates)) for p in SYNTHETIC for s in confirm]
        confirmed = _collect(_pool_map(_tune_task, tasks, args.workers))
        checked = score_recipes(confirmed, candidates, SYNTHETIC, budgets)
        print_tuning(checked, len(checked), knobs=False)
        boot = bootstrap_scores(confirmed, candidates, SYNTHETIC, budgets)
        duel = [x for x in checked if x.recipe in (top_score, incumbent)]
        default, why = one_se_choice(duel, boot, incumbent)
        print(f"  default: {why}")
        alt = "hull" if default.region == "each" else "each"
        duel = [x for x in checked if x.recipe in (best_of[alt], held[alt])]
        other, why = one_se_choice(duel, boot, held[alt])
        print(f"  region={alt}: {why}")
        print(f"  (tuning took {time.perf_counter() - started:.0f} s, "
              f"{_cpu_seconds():.0f} CPU s)")

    methods = _methods(default, other, top_score)
    print(f"\nFinal tables on held-out seeds ({_FINAL_SEED0}..): DEFAULT = {default.label()}")
    final_tasks = [(p, s, budgets, tuple(methods)) for p in SYNTHETIC
                   for s in _seeds(_FINAL_SEED0, seeds)]
    if not args.no_mlp:
        final_tasks += [("mlp", s, mlp_budgets, tuple(m for m in methods if m.mlp))
                        for s in _seeds(_FINAL_SEED0, mlp_seeds)]
        final_tasks.sort(key=lambda t: t[0] != "mlp")  # slow ones first
    final = _collect(_pool_map(_final_task, final_tasks, args.workers))
    verdict: dict[str, list[tuple[int, Cell]]] = {}
    for problem in (*SYNTHETIC, *(() if args.no_mlp else ("mlp",))):
        n = mlp_seeds if problem == "mlp" else seeds
        b = mlp_budgets if problem == "mlp" else budgets
        shown = [m for m in methods if m.mlp or problem != "mlp"]
        verdict[problem] = print_table(final, problem, shown, b, n)

    print("\nAll synthetic landscapes together (geometric mean of ratios, mean share of wins):")
    width = max(len(m.name) for m in methods)
    print(" " * width + "".join(f"{'B=' + str(b):>13}" for b in budgets))
    for m in methods:
        cells = []
        for b in budgets:
            cs = [compare(final, p, m.name, b) for p in SYNTHETIC]
            cells.append(Cell(_geomean(c.ratio for c in cs), float(np.mean([c.wins for c in cs]))))
        print(f"{m.name:<{width}}" + "".join(f"{_fmt_cell(c):>13}" for c in cells))

    print(f"\nTarget for the default (ratio <= {TARGET_RATIO}, wins >= {100 * TARGET_WINS:.0f}%):")
    for problem, cells in verdict.items():
        missed = [f"B={b} ({c.ratio:.2f}, {100 * c.wins:.0f}%)" for b, c in cells if not _meets(c)]
        status = "missed at " + ", ".join(missed) if missed else "met at every budget"
        print(f"  {problem:<9} {status}")
    hull = default if default.region == "hull" else other
    each = default if default.region == "each" else other
    print(f"\nrecommended defaults: region={default.region} shrink={each.shrink:g} "
          f"margin={hull.margin:g} min_width={hull.min_width:g} top_k={default.top_k} "
          f"(trials = the refine stage's) coarse/fine split="
          f"{round(100 * default.coarse_share)}/{round(100 * (1 - default.coarse_share))} "
          f"coarse plan={default.coarse}")
    print(f"  with region={other.region}: {other.label()}")
    print(f"total time {time.perf_counter() - started:.0f} s wall, {_cpu_seconds():.0f} s CPU "
          f"({args.workers} workers)")


if __name__ == "__main__":
    main()
