"""sweep's reading of a W&B sweep file beside W&B's own verdict on it.

``compare(path, oracle_result)`` loads the file with sweep (``sweep.load_spec`` and, for a
grid, every grid point through ``sweep.engine.planning.make_plan``) and sets the outcome beside
W&B's (``oracle_result`` is what ``tests.oracle_env.run_oracle`` gives for the file, or its
entry in an ``oracle.json``). The answer is a ``Verdict``: both outcomes, whether they agree,
which KNOWN differences explain it when they do not, and for a grid both accept whether
sweep's grid is W&B's exactly: the same points in the same order with the same Python types
(True, 1 and 1.0 are three different values).

KNOWN is the one table of the deliberate differences between sweep and W&B; any other
difference is unexpected and makes ``Verdict.ok`` false.

    python tests/wandb_compare.py tests/data/wandb            # oracle.json of the folder
    python tests/wandb_compare.py /work/wandb_corpus_real
    python tests/wandb_compare.py FOLDER --oracle             # run W&B's engine afresh

prints a line per file and a summary; the exit status is 1 when a difference is unexpected.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import re
import sys
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

ROOT = Path(__file__).resolve().parent.parent
GRID_CAP = 2000  # tests/wandb_oracle.py stops W&B's grid there
NUMERIC_KEYS = ("min", "max", "q", "mu", "sigma")
DEPRECATED_RE = re.compile(r"^(\S+) uses (?:log_uniform|inv_log_uniform|q_log_uniform), "
                           r"where min/max specify base-e exponents")
UNEXPECTED_KEYS_RE = re.compile(r"^Additional properties are not allowed \((.*) "
                                r"(?:was|were) unexpected\)$")
STR_COMPARE_RE = re.compile(r"TypeError: '[<>]=?' not supported between instances of "
                            r"'(?:str' and '\w+|\w+' and 'str)'$")
NESTED_ONLY_ERROR = "ValueError: Need at least one searchable parameter for bayes search."


# ------------------------------------------------------------- the parameters


class Leaf(NamedTuple):
    """One parameter of the file: its flat name (nested names joined by "."), its
    top-level name, its definition and the definition of its top-level entry."""

    flat: str
    top: str
    definition: Any
    top_definition: Any


def leaves(doc: Any) -> list[Leaf]:
    """Every parameter of a parsed sweep file, nested ones included."""
    out: list[Leaf] = []
    params = doc.get("parameters") if isinstance(doc, dict) else None
    if not isinstance(params, dict):
        return out

    def walk(node: Mapping[Any, Any], prefix: str, top: str | None, top_def: Any) -> None:
        for key, definition in node.items():
            name, first = f"{prefix}{key}", top if top is not None else str(key)
            first_def = top_def if top is not None else definition
            if isinstance(definition, dict) and isinstance(definition.get("parameters"), dict):
                walk(definition["parameters"], name + ".", first, first_def)
            else:
                out.append(Leaf(name, first, definition, first_def))

    walk(params, "", None, None)
    return out


def _numeric_string(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return math.isfinite(float(value.strip()))
    except ValueError:
        return False


def _whole_float(value: Any) -> bool:
    return isinstance(value, float) and value.is_integer()


def _messages_about(leaf: Leaf) -> set[str]:
    """What W&B says about a parameter it refuses: the schema's message on its definition
    (or on its top-level entry, for a nested one), then its own checks by name."""
    out = {f"{leaf.definition!r} is not valid under any of the given schemas",
           f"{leaf.top_definition!r} is not valid under any of the given schemas"}
    for name in {leaf.flat, leaf.top}:
        out.add(f"invalid hyperparameter configuration: {name}")
        out.add(f"ValidationError: invalid hyperparameter configuration: {name}")
    return out


def _about(message: str, leaf: Leaf) -> bool:
    return message in _messages_about(leaf) or message.startswith(f"{leaf.top}: min ")


# ----------------------------------------------------------- the known table


@dataclass
class Case:
    """What the matchers of KNOWN look at: the file, sweep's outcome, W&B's result."""

    doc: Any
    sweep: SweepOutcome
    wandb: Mapping[str, Any]

    def leaves(self) -> list[Leaf]:
        return leaves(self.doc)


def _run_cap(message: str, case: Case) -> bool:
    found = UNEXPECTED_KEYS_RE.match(message)
    return bool(found) and re.findall(r"'([^']*)'", found.group(1)) == ["run_cap"]


def _string_bounds(message: str, case: Case) -> bool:
    lenient = [leaf for leaf in case.leaves() if isinstance(leaf.definition, dict)
               and any(_numeric_string(leaf.definition.get(k)) for k in NUMERIC_KEYS)]
    if not lenient:
        return False
    return bool(STR_COMPARE_RE.match(message)) or any(_about(message, leaf)
                                                       for leaf in lenient)


def _whole_float_bounds(message: str, case: Case) -> bool:
    lenient = [leaf for leaf in case.leaves() if isinstance(leaf.definition, dict)
               and leaf.definition.get("distribution") == "int_uniform"
               and any(_whole_float(leaf.definition.get(k)) for k in ("min", "max"))]
    return any(_about(message, leaf) for leaf in lenient)


def _deprecated_log_uniform(message: str, case: Case) -> bool:
    found = DEPRECATED_RE.match(message)
    # sweep must accept it *with a warning* naming the parameter.
    return bool(found) and any("log_uniform" in w and found.group(1) in w
                               for w in case.sweep.warnings)


def _nested_only(message: str, case: Case) -> bool:
    return (message == NESTED_ONLY_ERROR and case.doc.get("method") == "bayes"
            and any("." in leaf.flat and isinstance(leaf.definition, dict)
                    and "value" not in leaf.definition for leaf in case.leaves()))


def _unknown_macro(message: str, case: Case) -> bool:
    return case.sweep.error_path == "command" and "unknown macro ${" in message


class Known(NamedTuple):
    """A deliberate difference. ``side`` is who refuses (or "grid": both accept and the
    grids differ); ``explains(message, case)`` says whether it accounts for one of that
    side's messages (W&B's violations and errors, or sweep's SpecError)."""

    reason: str
    side: str
    explains: Callable[[str, Case], bool] | None


KNOWN: dict[str, Known] = {
    "run_cap": Known(
        "run_cap: a schema violation in sweeps 0.2.0 only; W&B's service accepts it",
        "wandb", _run_cap),
    "string bounds": Known(
        "string bounds: sweep reads '1e-5' as the number; W&B's schema refuses strings",
        "wandb", _string_bounds),
    "whole float bounds": Known(
        "int_uniform min: 2.0: sweep reads a whole float as the integer (sweep.core.values."
        "integer); W&B's schema wants integers", "wandb", _whole_float_bounds),
    "deprecated log_uniform": Known(
        "deprecated log_uniform: W&B flags it deprecated, sweep accepts it with a warning",
        "wandb", _deprecated_log_uniform),
    "nested-only bayes": Known(
        "sweeps 0.2.0's validated config drops nested parameters (fill_validate_schema), "
        "so bayes over nested ones only has nothing to search; sweep searches them",
        "wandb", _nested_only),
    "unknown macro": Known(
        "unknown macro: sweep refuses what W&B's agent silently drops", "sweep",
        _unknown_macro),
    "q_uniform grid": Known(
        "q_uniform grids: W&B's grid leaves max out (arange), sweep's reaches max",
        "grid", None),
}


# ------------------------------------------------------------ sweep's outcome


@dataclass
class SweepOutcome:
    """What sweep makes of a file: 'loads', 'refuses' (a SpecError) or 'crashed'."""

    status: str
    error: str = ""
    error_path: str = ""
    warnings: list[str] = field(default_factory=list)
    method: str | None = None
    grid: list[dict[str, Any]] | None = None  # the first GRID_CAP + 1 points
    grid_size: int | None = None
    grid_cut: int | None = None  # run_cap when it cuts the grid


def sweep_outcome(path: str | Path) -> SweepOutcome:
    """Load ``path`` with sweep; for a grid, take its points as a stage's plan gives them."""
    import sweep
    from sweep.engine.planning import make_plan

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            spec = sweep.load_spec(path)
            stage = spec.stages[0]
            out = SweepOutcome("loads", method=stage.plan)
            if stage.plan == "grid":
                plan = make_plan(spec, stage)
                out.grid = [c.params for c in
                            itertools.islice(plan.candidates(), GRID_CAP + 1)]
                out.grid_size = plan.total
                if stage.truncate and stage.trials is not None:
                    out.grid_cut = stage.trials
        except sweep.SpecError as exc:
            out = SweepOutcome("refuses", error=str(exc), error_path=exc.path)
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            out = SweepOutcome("crashed", error=f"{type(exc).__name__}: {exc} "
                               f"({Path(where.filename).name}:{where.lineno})")
    out.warnings = list(dict.fromkeys(str(w.message) for w in caught))
    return out


# --------------------------------------------------------------- W&B's outcome


def wandb_outcome(result: Mapping[str, Any]) -> tuple[str, list[str]]:
    """('valid' | 'violations' | 'engine error' | 'grid error' | 'unreadable', messages)."""
    if result.get("error"):
        return "unreadable", [result["error"]]
    messages = list(result.get("violations") or [])
    status = "violations" if messages else "valid"
    if not messages and not result.get("engine_ok"):
        status = "engine error"
        messages.append(result.get("engine_error") or "no first run")
    if result.get("method") == "grid" and result.get("grid_error"):
        # W&B's grid is asked for without the schema: its refusal stands on its own.
        status = "grid error" if status == "valid" else status
        messages.append(result["grid_error"])
    return status, list(dict.fromkeys(messages))


def wandb_grid(result: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """W&B's grid, flat, from run_oracle's ``grid_flat`` or oracle.json's ``grid_table``."""
    if "grid_flat" in result:
        return result["grid_flat"]
    table = result.get("grid_table")
    if table is None:
        return None
    return [dict(zip(table["columns"], row)) for row in table["rows"]]


# ------------------------------------------------------------------- grids


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same Python type all the way down (True != 1 != 1.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


def _first_difference(ours: list[dict], theirs: list[dict]) -> str:
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if not same(a, b):
            keys = [k for k in sorted(set(a) | set(b)) if not same(a.get(k), b.get(k))]
            shown = ", ".join(f"{k}: sweep {a.get(k, '<none>')!r} vs W&B "
                              f"{b.get(k, '<none>')!r}" for k in keys[:3])
            return f"point {i} differs ({shown})"
    return f"sweep has {len(ours)} points, W&B {len(theirs)}"


def _q_uniform_explains(doc: Any, ours: list[dict], theirs: list[dict]) -> bool:
    """True when sweep's grid is W&B's plus points where a q_uniform parameter sits at
    its max (which W&B's numpy.arange leaves out)."""
    q_params = [leaf for leaf in leaves(doc) if isinstance(leaf.definition, dict)
                and leaf.definition.get("distribution") == "q_uniform"]
    if not q_params:
        return False
    def key(value: Any) -> str:
        return f"{type(value).__name__}:{value!r}"

    axes = {leaf.flat: {key(p.get(leaf.flat)) for p in theirs} for leaf in q_params}
    kept = []
    for point in ours:
        at_max = [leaf for leaf in q_params if key(point.get(leaf.flat)) not in axes[leaf.flat]]
        if not at_max:
            kept.append(point)
        elif any(point.get(leaf.flat) != leaf.definition.get("max") for leaf in at_max):
            return False
    return len(kept) == len(theirs) and all(same(a, b) for a, b in zip(kept, theirs))


def compare_grids(doc: Any, ours: SweepOutcome, theirs: list[dict], truncated: bool
                  ) -> tuple[bool, str, list[str]]:
    """(equal, what was compared or how they differ, known kinds that explain it)."""
    grid = ours.grid or []
    notes = []
    if truncated:  # W&B's grid was cut at GRID_CAP points by tests/wandb_oracle.py
        grid = grid[:len(theirs)]
        notes.append(f"first {len(theirs)} of sweep's {ours.grid_size} points")
    if ours.grid_cut is not None and ours.grid_cut < len(theirs):
        theirs = theirs[:ours.grid_cut]
        notes.append(f"run_cap {ours.grid_cut}: W&B's first {ours.grid_cut}")
    if len(grid) == len(theirs) and all(same(a, b) for a, b in zip(grid, theirs)):
        return True, f"equal, {len(theirs)} points" + (f" ({'; '.join(notes)})"
                                                        if notes else ""), []
    if _q_uniform_explains(doc, grid, theirs):
        return False, f"q_uniform max: sweep {len(grid)} points, W&B {len(theirs)}", [
            "q_uniform grid"]
    return False, _first_difference(grid, theirs), []


# ------------------------------------------------------------------ verdict


@dataclass
class Verdict:
    """sweep's outcome beside W&B's for one file."""

    file: str
    method: Any
    sweep: str  # loads | refuses | crashed
    sweep_error: str  # the SpecError ("path: message") or the crash
    sweep_error_path: str
    sweep_warnings: list[str]
    wandb: str  # valid | violations | engine error | grid error | unreadable
    wandb_messages: list[str]
    agree: bool  # both accept, or both refuse
    known: list[str]  # kinds of KNOWN that explain the differences
    reason: str  # why they differ, when they do
    grid: str | None = None  # None when no grid was compared
    grid_equal: bool | None = None
    unexpected: bool = False

    @property
    def ok(self) -> bool:
        return not self.unexpected

    @property
    def sweep_accepts(self) -> bool:
        return self.sweep == "loads"

    @property
    def wandb_accepts(self) -> bool:
        return self.wandb == "valid"

    @property
    def label(self) -> str:
        if self.unexpected:
            return "UNEXPECTED"
        if self.known:
            return "known: " + ", ".join(self.known)
        return "agree"

    def describe(self) -> str:
        lines = [f"{self.file}: {self.label}", f"  sweep: {self.sweep}"
                 + (f" ({self.sweep_error})" if self.sweep_error else "")]
        lines.append(f"  W&B:   {self.wandb}" + "".join(f"\n    - {m[:300]}"
                                                         for m in self.wandb_messages))
        if self.grid:
            lines.append(f"  grid:  {self.grid}")
        if self.reason:
            lines.append(f"  why:   {self.reason}")
        return "\n".join(lines)


def _read_doc(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def compare(path: str | Path, result: Mapping[str, Any]) -> Verdict:
    """sweep's verdict on ``path`` beside W&B's ``result`` (see the module docstring)."""
    path = Path(path)
    doc = _read_doc(path)
    ours = sweep_outcome(path)
    status, messages = wandb_outcome(result)
    case = Case(doc if isinstance(doc, dict) else {}, ours, result)
    verdict = Verdict(
        file=path.name, method=result.get("method"), sweep=ours.status,
        sweep_error=ours.error, sweep_error_path=ours.error_path,
        sweep_warnings=ours.warnings, wandb=status, wandb_messages=messages,
        agree=(ours.status == "loads") == (status == "valid"), known=[], reason="")

    if ours.status == "crashed":
        verdict.agree = False
        verdict.unexpected = True
        verdict.reason = f"sweep crashed: {ours.error}"
        return verdict
    if not verdict.agree and ours.status == "loads":
        kinds, unexplained = _explain(messages, case, "wandb")
        verdict.known = kinds
        if unexplained:
            verdict.unexpected = True
            verdict.reason = "sweep loads it; W&B refuses: " + " | ".join(unexplained)
        else:
            verdict.reason = "W&B refuses it only for known differences"
    elif not verdict.agree:
        kinds, unexplained = _explain([ours.error], case, "sweep")
        verdict.known = kinds
        if unexplained:
            verdict.unexpected = True
            verdict.reason = f"W&B accepts it; sweep refuses: {ours.error}"
        else:
            verdict.reason = "sweep refuses it only for a known difference"
    elif ours.status == "loads" and ours.method == "grid":
        theirs = wandb_grid(result)
        if theirs is None:
            verdict.unexpected = True
            verdict.reason = "W&B accepts the grid but the oracle result holds no grid"
            return verdict
        equal, text, kinds = compare_grids(case.doc, ours, theirs,
                                           bool(result.get("grid_truncated")))
        verdict.grid, verdict.grid_equal, verdict.known = text, equal, kinds
        if not equal:
            verdict.reason = f"the grids differ: {text}"
            verdict.unexpected = not kinds
    return verdict


def _explain(messages: list[str], case: Case, side: str) -> tuple[list[str], list[str]]:
    """(known kinds that explain some messages, the messages none explains)."""
    kinds: list[str] = []
    unexplained = []
    for message in messages:
        found = [kind for kind, known in KNOWN.items()
                 if known.side == side and known.explains and known.explains(message, case)]
        if not found:
            unexplained.append(message)
        kinds.extend(k for k in found if k not in kinds)
    return kinds, unexplained


# ---------------------------------------------------------------------- main


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def oracle_results(folder: Path, files: list[Path], fresh: bool) -> Iterator[dict]:
    """W&B's result per file: from the folder's oracle.json where it holds the file (and,
    when it records one, the same sha256), else from W&B's engine run now."""
    stored: dict[str, dict] = {}
    reference = folder / "oracle.json"
    if reference.is_file() and not fresh:
        stored = json.loads(reference.read_text())["files"]
    missing = [p for p in files if p.name not in stored
               or stored[p.name].get("sha256", _sha256(p)) != _sha256(p)]
    computed: dict[str, dict] = {}
    if missing:
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        from tests.oracle_env import run_oracle

        print(f"running W&B's engine on {len(missing)} file(s)...", file=sys.stderr)
        for path, result in zip(missing, run_oracle(missing)):
            computed[path.name] = result
    for path in files:
        yield computed.get(path.name) or stored[path.name]


def summarize(verdicts: list[Verdict]) -> str:
    agree = sum(1 for v in verdicts if v.ok and not v.known)
    known = [v for v in verdicts if v.ok and v.known]
    unexpected = [v for v in verdicts if v.unexpected]
    kinds = Counter(k for v in known for k in v.known)
    by_kind = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
    grids = [v for v in verdicts if v.grid is not None]
    unequal = [v for v in grids if not v.grid_equal]
    grid_text = "all equal" if not unequal else "; ".join(
        f"{v.file} differs ({v.label})" for v in unequal)
    return (f"{len(verdicts)} files: {agree} agree, {len(known)} known differences"
            f"{f' ({by_kind})' if by_kind else ''}, {len(unexpected)} unexpected; "
            f"{len(grids)} grids compared, {grid_text}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a folder of W&B sweep files (*.yaml)")
    parser.add_argument("--oracle", action="store_true",
                        help="run W&B's engine even where oracle.json has the file")
    args = parser.parse_args(argv)
    files = sorted(args.folder.glob("*.yaml")) + sorted(args.folder.glob("*.yml"))
    if not files:
        parser.error(f"no *.yaml files in {args.folder}")
    verdicts = [compare(path, result)
                for path, result in zip(files, oracle_results(args.folder, files,
                                                              args.oracle))]
    width = max(len(v.file) for v in verdicts)
    print(f"{'file':<{width}}  {'method':<6}  {'sweep':<8}  {'W&B':<12}  verdict / grid")
    for v in verdicts:
        grid = f"  [grid {v.grid}]" if v.grid else ""
        print(f"{v.file:<{width}}  {v.method!s:<6}  {v.sweep:<8}  {v.wandb:<12}  "
              f"{v.label}{grid}")
    for v in verdicts:
        if v.unexpected:
            print("\n" + v.describe())
    print("\n" + summarize(verdicts))
    return 1 if any(v.unexpected for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
