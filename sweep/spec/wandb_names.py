"""W&B sweep files, read as W&B reads them: the parts of a sweep file that exist only
because W&B has them.

- ``method: grid | random | bayes`` with ``run_cap`` is a single stage (``bayes`` runs
  on sweep's model-based plan);
- ``name`` is display text (``First Sweep``, ``imbal_prop/leq0.1``): it is kept as
  written, and the results folder gets a safe name derived from it;
- a file without ``name`` takes its file name; one without ``metric`` runs, ranks
  nothing, and is refused only where a metric is needed (refine, bayes, early
  termination);
- ``project`` and ``entity`` are kept for the ``${project}``/``${entity}`` macros.

Example:
    >>> folder_name("imbal_prop/leq0.1")
    'imbal_prop-leq0.1-ff4ebb'
    >>> folder_name("mlp-digits")
    'mlp-digits'
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import warnings
from collections.abc import Mapping
from typing import Any

from ..core.errors import SpecError
from ..core.values import integer, one_of
from ..space.search_space import Space
from .stages import Stage, check_grid, merge_points, stage_seed

METHODS = ("grid", "random", "bayes")
DEFAULT_RANDOM_TRIALS = 20
DEFAULT_BAYES_TRIALS = 32
SAFE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
MAX_NAME = 256


def check_name(raw: Any) -> str:
    """A sweep's name: any single line of text (W&B's ``name`` is display text)."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        raise SpecError("name", raw, "text", f"YAML read it as a number; quote it: "
                        f"name: '{raw}'")
    if not isinstance(raw, str) or not raw.strip():
        raise SpecError("name", raw, "the sweep's name (text)")
    if len(raw) > MAX_NAME or any(unicodedata.category(c) in ("Cc", "Cs") for c in raw):
        raise SpecError("name", raw, f"one line of at most {MAX_NAME} printable characters")
    return raw


def folder_name(name: str) -> str:
    """The results folder of a sweep named ``name``: the name itself when it is a safe
    folder name (letters, digits, ``_ . -``, not starting with ``.`` or ``-``), else a
    safe form of it plus a short hash, so different names never share a folder and no
    name leaves the results root.

    Example: ``folder_name("First Sweep") == "First-Sweep-" + <6 hex digits>``
    """
    if SAFE_RE.match(name) and name not in (".", ".."):
        return name
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", ascii_text).strip(".-")[:100] or "sweep"
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:6]
    return f"{slug}-{digest}"


def method_stage(doc: Mapping[str, Any], space: Space, seed: int, points: dict[str, int]
                 ) -> Stage:
    """The single stage of a W&B file: ``method`` with ``run_cap``."""
    method = one_of("method", doc.get("method"), METHODS)
    run_cap = doc.get("run_cap")
    if run_cap is not None:
        run_cap = integer("run_cap", run_cap, minimum=1)
    if run_cap is None and method != "grid":
        default = DEFAULT_RANDOM_TRIALS if method == "random" else DEFAULT_BAYES_TRIALS
        warnings.warn(f"method: {method} without run_cap: running {default} trials (W&B "
                      f"would run until stopped); set run_cap to choose", stacklevel=2)
        run_cap = default
    stage = Stage(index=0, plan=method, trials=run_cap, seed=stage_seed(seed, 0),
                  truncate=method == "grid", axis_points=merge_points(points, None, space))
    check_grid(stage, space, "method")
    return stage


def default_name(path_stem: str) -> str:
    """The name of a file without ``name``: its file name (W&B files may leave it out)."""
    return path_stem or "sweep"


__all__ = ["METHODS", "check_name", "default_name", "folder_name", "method_stage"]
