"""Refine's options, their choices and their defaults: the one place that both refine plans
and the sweep file (``sweep.spec.stages``) read them from.

A refine stage narrows the space to boxes around the best trials so far (its anchors):
fixed boxes (``region: each``, one per anchor; ``hull``, one around them all) or boxes
that follow new results and shrink (``adaptive``, the default). Widths are fractions of
the unit interval, so a log axis narrows in decades.

The fixed regions keep the defaults of the first release; the adaptive ones were chosen
with ``tests/bench/quality.py`` on its tuning families (README, "Search quality").

Example:
    >>> default_shrink("adaptive"), default_min_width("adaptive", 0.02), default_top_k(32)
    (0.3, 0.02, 4)
"""

from __future__ import annotations

REGIONS = ("adaptive", "each", "hull")
FIXED_REGIONS = ("each", "hull")
DEFAULT_REGION = "adaptive"
# Categorical axes keep the anchor's value, or take any value among the anchors.
CATEGORICAL = ("keep", "narrow")
DEFAULT_CATEGORICAL = "keep"
# How a box is filled (the first of each is the default): fixed boxes by a fixed plan,
# adaptive ones by a posterior draw, expected improvement or uniform points.
SAMPLES = ("random", "grid", "sobol")
ADAPTIVE_SAMPLES = ("thompson", "model", "random")

# Fixed boxes: an each-box is DEFAULT_SHRINK wide per axis; a hull is widened by
# DEFAULT_MARGIN of its width per side; neither is narrower than DEFAULT_MIN_WIDTH.
DEFAULT_SHRINK = 0.25
DEFAULT_MARGIN = 0.1
DEFAULT_MIN_WIDTH = 0.1
# Adaptive boxes start ADAPTIVE_SHRINK wide and narrow towards ADAPTIVE_MIN_WIDTH as the
# budget's results come in (at the pace ADAPTIVE_DECAY sets); each proposal scores
# ADAPTIVE_CANDIDATES random points of its box.
ADAPTIVE_SHRINK = 0.3
ADAPTIVE_MIN_WIDTH = 0.05
ADAPTIVE_DECAY = 1.0
ADAPTIVE_CANDIDATES = 128


def default_top_k(trials: int | None, region: str = "each") -> int:
    """Anchors for a refine stage of ``trials`` trials: about one per 8 trials, 1..4 for
    ``each`` and ``adaptive``, 2..8 for ``hull`` (a hull of one anchor is only a
    min_width box); a stage with no budget (a full grid per box) as one of 8 trials.

    Example: ``default_top_k(32) == 4``
    """
    trials = trials or 8
    if region == "hull":
        return max(2, min(8, trials // 8))
    return max(1, min(4, trials // 8))


def default_shrink(region: str) -> float:
    """A box's width per axis (adaptive: its width at the start).

    Example: ``default_shrink("each") == 0.25``
    """
    return ADAPTIVE_SHRINK if region == "adaptive" else DEFAULT_SHRINK


def default_min_width(region: str, shrink: float) -> float:
    """The narrowest box; an adaptive box never starts narrower than it ends.

    Example: ``default_min_width("adaptive", 0.3) == 0.05``
    """
    return min(shrink, ADAPTIVE_MIN_WIDTH) if region == "adaptive" else DEFAULT_MIN_WIDTH


def samples(region: str) -> tuple[str, ...]:
    """How a box of ``region`` may be filled, the default first.

    Example: ``samples("adaptive")[0] == "thompson"``
    """
    return ADAPTIVE_SAMPLES if region == "adaptive" else SAMPLES


__all__ = ["ADAPTIVE_CANDIDATES", "ADAPTIVE_DECAY", "ADAPTIVE_MIN_WIDTH", "ADAPTIVE_SAMPLES",
           "ADAPTIVE_SHRINK", "CATEGORICAL", "DEFAULT_CATEGORICAL", "DEFAULT_MARGIN",
           "DEFAULT_MIN_WIDTH", "DEFAULT_REGION", "DEFAULT_SHRINK", "FIXED_REGIONS", "REGIONS",
           "SAMPLES", "default_min_width", "default_shrink", "default_top_k", "samples"]
