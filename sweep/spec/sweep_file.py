"""Sweep files: YAML (read with ``yaml.safe_load`` limits) or a Python dict into a
validated ``Spec``.

The format is a superset of W&B's sweep file: a W&B file runs as it is
(``sweep.spec.wandb_names``); ``stages:`` adds coarse-to-fine. Every invalid input raises
``SpecError`` naming the path of the field, the value and what was expected; the most
fundamental problem is reported first, and warnings only once the file is valid.

Example:
    >>> spec = load_spec({
    ...     "name": "demo", "objective": "jobs.mlp:train",
    ...     "metric": {"name": "val_error", "goal": "minimize"},
    ...     "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1}},
    ...     "stages": [{"plan": "random", "trials": 8}],
    ... })
    >>> spec.space["lr"], spec.folder
    (loguniform(0.0001, 1), 'demo')
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import SpecError
from ..core.metric import GOALS, Metric
from ..core.values import integer, known_keys, number, one_of, text
from ..plans import REGISTRY
from ..space.search_space import Distribution, Space
from ..stopping import StoppingRule
from ..worker import command as cmd
from .checkpoints import CheckpointSettings, parse_checkpoints
from .early_terminate import stopping_rule
from .parameters import parse_parameters
from .safe_yaml import load_yaml
from .stages import Stage, parse_stages
from .wandb_names import check_name, default_name, folder_name, method_stage

OBJECTIVE_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
TOP_KEYS = (
    "name", "description", "objective", "command", "program", "metric", "parameters",
    "stages", "method", "run_cap", "seed", "resources", "retries", "timeout_s",
    "max_concurrent", "batch", "early_terminate", "project", "entity", "checkpoints",
    "retry_timeouts",
    # W&B's schema has these too; they mean nothing to sweep (it is its own controller).
    "apiVersion", "kind", "controller",
)
RESOURCE_KEYS = ("num_cpus", "num_gpus", "memory", "custom")
# What defines a sweep's trials: a rerun must keep these to resume (stages may grow).
IDENTITY_KEYS = ("name", "objective", "command", "program", "metric", "parameters", "seed",
                 "method", "early_terminate")
DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]


@dataclass
class Resources:
    """What one trial holds while it runs (Ray task options)."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory: int | None = None
    custom: dict[str, float] = field(default_factory=dict)

    def ray_options(self) -> dict[str, Any]:
        """Keyword arguments for ``remote_fn.options(...)``."""
        opts: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory:
            opts["memory"] = int(self.memory)
        if self.custom:
            opts["resources"] = dict(self.custom)
        return opts


@dataclass
class Spec:
    """A validated sweep: what to run, over which space, in which stages.

    ``name`` is the sweep's name as written (the ``sweep`` column); ``folder`` the
    results folder derived from it. ``metric`` is None for a sweep that ranks
    nothing; ``objective``, ``command`` and ``program`` all None for a file that only
    plans (``sweep run --objective`` supplies one).
    """

    name: str
    metric: Metric | None
    space: Space
    stages: list[Stage]
    objective: str | Callable[..., Any] | None = None
    command: list[str] | None = None
    program: str | None = None
    paths: dict[str, tuple[str, ...]] = field(default_factory=dict)
    seed: int = 0
    resources: Resources = field(default_factory=Resources)
    retries: int = 2
    timeout_s: float | None = None
    max_concurrent: int | None = None
    batch: int | str = "auto"
    description: str = ""
    early_terminate: dict[str, Any] | None = None
    project: str = ""
    entity: str = ""
    document: dict[str, Any] = field(default_factory=dict)
    base_dir: str = "."
    checkpoints: CheckpointSettings = field(default_factory=CheckpointSettings)
    retry_timeouts: bool = False

    @property
    def folder(self) -> str:
        """The results folder under the root (a safe form of the name)."""
        return folder_name(self.name)

    @property
    def live_reports(self) -> bool:
        """True when the driver needs reports while trials run (a stopping rule, or a
        stage whose plan decides on reports, such as pbt)."""
        return self.early_terminate is not None or any(
            REGISTRY[stage.plan].decides_on_reports for stage in self.stages)

    def stopping_rule(self) -> StoppingRule | None:
        """A fresh early stopping rule of ``early_terminate`` (None: no early stopping)."""
        return stopping_rule(self.early_terminate, self.metric)

    @property
    def runnable(self) -> bool:
        """True when the spec says what to run (an objective, a program or a command)."""
        return self.objective is not None or self.command is not None

    def nest(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """A flat config as the objective receives it: nested parameters as dicts.

        Example: ``{"opt.lr": 0.1}`` -> ``{"opt": {"lr": 0.1}}``
        """
        out: dict[str, Any] = {}
        for name, value in flat.items():
            path = self.paths.get(name, (name,))
            node = out
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = value
        return out

    def to_yaml(self) -> str:
        """The spec as run, as YAML (callables are written by name)."""
        return yaml.safe_dump(self.document, sort_keys=False, allow_unicode=True)

    def with_objective(self, objective: str | Callable[..., Any]) -> Spec:
        """This spec with an objective supplied from outside the file (``--objective``)."""
        if self.command is not None or (self.objective is not None
                                        and self.objective != objective):
            raise SpecError("--objective", _shown(objective), "no objective, program or "
                            "command in the sweep file (it already has one)")
        return from_dict(dict(self.document, objective=objective), base_dir=self.base_dir)


def _shown(objective: Any) -> str:
    return objective if isinstance(objective, str) else getattr(objective, "__name__", "?")


# -------------------------------------------------------------------- loading


def load_spec(source: str | Path | Mapping[str, Any] | Spec) -> Spec:
    """A validated ``Spec`` from a path to a YAML file, a dict, or a ``Spec``.

    Example: ``load_spec("jobs/mlp.yaml").stages[0].plan == "random"``
    """
    if isinstance(source, Spec):
        return source
    if isinstance(source, Mapping):
        return _validated(lambda: from_dict(dict(source), base_dir="."))
    path = Path(source)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(str(path), expected="an existing sweep file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(str(path), expected=f"a readable UTF-8 file ({exc})") from None
    return loads_spec(raw, base_dir=str(path.parent), source=str(path),
                      default=default_name(path.stem))


def loads_spec(raw: str, *, base_dir: str = ".", source: str = "<string>",
               default: str | None = None) -> Spec:
    """A validated ``Spec`` from YAML text; ``default`` names a file without ``name``.

    Example: ``loads_spec("name: x\\nobjective: m:f\\n...")``
    """

    def parse() -> Spec:
        doc = load_yaml(raw, source)
        if not isinstance(doc, dict):
            shown = doc if not isinstance(doc, str) else doc[:40]
            raise SpecError(source, shown, "a mapping with parameters and a method or stages")
        if "name" not in doc and default:
            doc = {"name": default, **doc}
        return from_dict(doc, base_dir=base_dir)

    return _validated(parse)


def _validated(parse: Callable[[], Spec]) -> Spec:
    """Run ``parse`` holding its warnings back: a refused file shows its error first
    (the warnings ride on the error as ``notes``); a valid one then warns, once each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            spec = parse()
        except SpecError as exc:
            exc.notes = _unique_messages(caught)
            raise
    for message in _unique_messages(caught):
        warnings.warn(message, stacklevel=3)
    return spec


def _unique_messages(caught: list[warnings.WarningMessage]) -> list[str]:
    return list(dict.fromkeys(str(w.message) for w in caught))


def from_dict(doc: dict[str, Any], *, base_dir: str) -> Spec:
    """A validated ``Spec`` from a parsed document (checked most fundamental first)."""
    for key in doc:
        if not isinstance(key, str):
            raise SpecError(repr(key), expected="string keys at the top level")
    known_keys("", doc, TOP_KEYS)
    if "name" not in doc:
        raise SpecError("name", expected="the sweep's name (it also names the results folder)")
    name = check_name(doc["name"])
    params, paths, points = parse_parameters(doc.get("parameters"))
    space = Space(params)
    seed = integer("seed", doc.get("seed", 0), minimum=0)
    stages = _stages(doc, space, seed, points)
    metric = _metric(doc.get("metric"), stages, doc.get("early_terminate"))
    objective, command, program = _objective(doc)
    spec = Spec(
        name=name, metric=metric, space=space, stages=stages, objective=objective,
        command=command, program=program, paths=paths, seed=seed,
        resources=_resources(doc.get("resources")),
        retries=integer("retries", doc.get("retries", 2), minimum=0),
        timeout_s=_timeout(doc.get("timeout_s")),
        max_concurrent=None if doc.get("max_concurrent") is None else integer(
            "max_concurrent", doc["max_concurrent"], minimum=1),
        batch="auto" if doc.get("batch", "auto") == "auto" else integer(
            "batch", doc["batch"], minimum=1),
        description=_text_field("description", doc.get("description", "")),
        early_terminate=_early_terminate(doc.get("early_terminate"), metric),
        project=_text_field("project", doc.get("project") or ""),
        entity=_text_field("entity", doc.get("entity") or ""),
        document=_storable(doc), base_dir=base_dir,
        checkpoints=parse_checkpoints(doc.get("checkpoints")),
        retry_timeouts=_flag("retry_timeouts", doc.get("retry_timeouts", False)),
    )
    _check_storable(spec)
    return spec


def _stages(doc: Mapping[str, Any], space: Space, seed: int, points: dict[str, int]
            ) -> list[Stage]:
    raw_stages, method = doc.get("stages"), doc.get("method")
    if raw_stages is not None and method is not None:
        raise SpecError("method", method, "either W&B's method or stages, not both")
    if raw_stages is None:
        if method is None:
            raise SpecError("stages", expected="a list of stages (or W&B's method: "
                            "grid|random|bayes)")
        return [method_stage(doc, space, seed, points)]
    if "run_cap" in doc:
        raise SpecError("run_cap", doc["run_cap"], "no run_cap beside stages (give each "
                        "stage its trials)")
    return parse_stages(raw_stages, space, seed=seed, points=points)


def _metric(raw: Any, stages: list[Stage], early_terminate: Any) -> Metric | None:
    if raw is None:
        needs = [f"stage {s.index} ({s.plan})" for s in stages if s.learns]
        if early_terminate is not None:
            needs.append("early_terminate")
        if needs:
            raise SpecError("metric", expected="{name: <metric>, goal: minimize|maximize}",
                            hint=f"{', '.join(needs)} ranks trials by it")
        return None
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        raise SpecError("metric", raw, "{name: <metric>, goal: minimize|maximize}")
    known_keys("metric", raw, ("name", "goal", "target", "impute"))
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SpecError("metric.name", name, "the name of the metric the objective returns")
    text("metric.name", name)
    goal = one_of("metric.goal", raw.get("goal", "minimize"), GOALS)
    if raw.get("target") is not None:
        number("metric.target", raw["target"])
    return Metric(name, goal)


def _objective(doc: Mapping[str, Any]) -> tuple[Any, list[str] | None, str | None]:
    objective, command, program = doc.get("objective"), doc.get("command"), doc.get("program")
    if objective is not None and (command is not None or program is not None):
        raise SpecError("objective", _shown(objective),
                        "either objective or command/program, not both")
    if objective is not None:
        if callable(objective):
            return objective, None, None
        if not isinstance(objective, str) or not OBJECTIVE_RE.match(objective):
            raise SpecError("objective", objective, "'module:function', e.g. jobs.mlp:train")
        return objective, None, None
    if program is not None and (not isinstance(program, str) or not program.strip()):
        raise SpecError("program", program, "a path to the training script")
    if command is None:
        return None, (None if program is None else list(DEFAULT_COMMAND)), program
    if not isinstance(command, list) or not command:
        raise SpecError("command", command, "a non-empty list of arguments")
    for i, arg in enumerate(command):
        if not isinstance(arg, (str, int, float)) or isinstance(arg, bool):
            raise SpecError(f"command[{i}]", arg, "a string")
        text(f"command[{i}]", str(arg))
    command = [str(a) for a in command]
    problem = cmd.check_template(command)
    if problem:
        raise SpecError("command", command, "known W&B macros", problem)
    if any("${program}" in a for a in command) and program is None:
        raise SpecError("program", expected="a script path, since command uses ${program}")
    return None, command, program


def _early_terminate(raw: Any, metric: Metric | None) -> dict[str, Any] | None:
    stopping_rule(raw, metric)  # refuses what no rule can be built from
    return None if raw is None else dict(raw)


def _flag(path: str, raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise SpecError(path, raw, "true or false")
    return raw


def _timeout(raw: Any) -> float | None:
    if raw is None:
        return None
    value = float(number("timeout_s", raw))
    if value <= 0:
        raise SpecError("timeout_s", raw, "a number of seconds > 0, or null")
    return value


def _text_field(path: str, raw: Any) -> str:
    if not isinstance(raw, str):
        raise SpecError(path, raw, "a string")
    return text(path, raw)


def _resources(raw: Any) -> Resources:
    if raw is None:
        return Resources()
    if not isinstance(raw, dict):
        raise SpecError("resources", raw, "{num_cpus: .., num_gpus: .., memory: .., custom: {..}}")
    known_keys("resources", raw, RESOURCE_KEYS)
    res = Resources()
    for key in ("num_cpus", "num_gpus"):
        if key in raw:
            value = number(f"resources.{key}", raw[key])
            if value < 0:
                raise SpecError(f"resources.{key}", raw[key], "a number >= 0")
            if key == "num_gpus" and value > 1 and not float(value).is_integer():
                raise SpecError("resources.num_gpus", raw[key],
                                "a fraction <= 1 or a whole number of GPUs (Ray's rule)")
            setattr(res, key, float(value))
    if raw.get("memory") is not None:
        res.memory = integer("resources.memory", raw["memory"], minimum=0)
    custom = raw.get("custom", {})
    if not isinstance(custom, dict):
        raise SpecError("resources.custom", custom, "a mapping of resource name to amount")
    for name, amount in custom.items():
        value = number(f"resources.custom.{name}", amount)
        if value < 0:
            raise SpecError(f"resources.custom.{name}", amount, "an amount >= 0")
        res.custom[str(name)] = float(value)
    if res.num_cpus == 0 and res.num_gpus == 0 and not res.custom:
        raise SpecError("resources", raw, "a trial that holds some resource (num_cpus > 0, "
                        "num_gpus > 0 or a custom resource)",
                        "with nothing held, Ray would start unbounded trials at once")
    return res


def _storable(x: Any) -> Any:
    """A copy that YAML can write: callables and distribution objects by name."""
    if isinstance(x, Distribution):
        return x.to_dict()
    if callable(x):
        return f"python:{getattr(x, '__module__', '?')}.{getattr(x, '__qualname__', '?')}"
    if isinstance(x, Mapping):
        return {str(k): _storable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_storable(v) for v in x]
    return copy.deepcopy(x)


def _check_storable(spec: Spec) -> None:
    """Whatever validates must also be writable as spec.yaml (so that it runs)."""
    try:
        spec.to_yaml().encode("utf-8")
    except (yaml.YAMLError, UnicodeEncodeError, RecursionError, ValueError) as exc:
        raise SpecError("<document>", expected=f"a document YAML can write back ({exc})"
                        ) from None


# --------------------------------------------------------------------- resume


def resume_problem(old: Mapping[str, Any], new: Mapping[str, Any] | Spec) -> str | None:
    """None when a sweep stored with document ``old`` can resume as ``new`` (a document,
    or the ``Spec`` to run); else which field changed, from what to what. Stages may be
    added at the end and trial budgets raised; everything that defines the stored trials
    must stay. Given the ``Spec``, a raised budget must also extend its stage's design
    (the stored trials first, then more: ``Plan.extension_problem``), never mix two.

    Example: ``resume_problem(old, dict(old, seed=1))`` -> ``"seed: was 0, now 1"``
    """
    spec = new if isinstance(new, Spec) else None
    doc = spec.document if spec is not None else new
    problem = _document_problem(old, doc)
    if problem or spec is None:
        return problem
    return _design_problem(old, doc, spec)


def _document_problem(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    for key in IDENTITY_KEYS:
        where = _difference(old.get(key), new.get(key), key)
        if where:
            return where
    old_stages, new_stages = old.get("stages"), new.get("stages")
    if (old_stages is None) != (new_stages is None):
        return "stages: the sweep switched between W&B's method and stages"
    if old_stages is None:
        return _budget("run_cap", old.get("run_cap"), new.get("run_cap"))
    if not isinstance(old_stages, list) or not isinstance(new_stages, list):
        return _difference(old_stages, new_stages, "stages")
    if len(new_stages) < len(old_stages):
        return (f"stages: {len(old_stages)} stored, {len(new_stages)} now (stages may be "
                f"added at the end, not removed)")
    for i, (a, b) in enumerate(zip(old_stages, new_stages)):
        if not isinstance(a, dict) or not isinstance(b, dict):
            where = _difference(a, b, f"stages[{i}]")
        else:
            where = _budget(f"stages[{i}].trials", a.get("trials"), b.get("trials")) or \
                _difference({k: v for k, v in a.items() if k != "trials"},
                            {k: v for k, v in b.items() if k != "trials"}, f"stages[{i}]")
        if where:
            return where
    return None


def _design_problem(old: Mapping[str, Any], new: Mapping[str, Any], spec: Spec
                    ) -> str | None:
    """The first raised budget whose stage's plan would draw a different design."""
    from ..plans import plan_class

    if new.get("stages") is None:
        raised = [("run_cap", old.get("run_cap"), new.get("run_cap"), spec.stages[0])]
    else:
        raised = [(f"stages[{i}].trials", a.get("trials"), b.get("trials"), spec.stages[i])
                  for i, (a, b) in enumerate(zip(old["stages"], new["stages"]))]
    for path, was, now, stage in raised:
        if was is None or was == now:
            continue
        why = plan_class(stage.plan).extension_problem(stage, stage.space(spec.space))
        if why:
            return (f"{path}: was {was!r}, now {now!r}, but {why} (add a stage for more "
                    f"trials)")
    return None


def _budget(path: str, old: Any, new: Any) -> str | None:
    if old == new or (new is None and old is None):
        return None
    if isinstance(old, (int, float)) and isinstance(new, (int, float)) and new >= old:
        return None
    return f"{path}: was {old!r}, now {new!r} (a budget may be raised, not lowered)"


def _difference(a: Any, b: Any, path: str) -> str | None:
    """The first path where two documents differ (1 and 1.0 alike, True and 1 not)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            found = _difference(a.get(key), b.get(key), f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            found = _difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    same = a == b and (isinstance(a, bool) == isinstance(b, bool))
    if same:
        return None
    return f"{path}: was {_brief(a)}, now {_brief(b)}"


def _brief(value: Any) -> str:
    text_value = repr(value)
    return text_value if len(text_value) <= 60 else text_value[:57] + "..."


__all__ = ["Metric", "Resources", "Spec", "from_dict", "load_spec", "loads_spec",
           "resume_problem"]
