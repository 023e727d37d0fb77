"""The sweep's metric and its goal: the one place that knows which way is better.

Ranking, the driver's best-so-far, plans and stopping rules all compare values through
``Metric.loss`` (the value to minimise): ``value`` for ``minimize``, ``-value`` for
``maximize``.

Example:
    >>> m = Metric("acc", "maximize")
    >>> m.loss(0.9), m.column, m.better(0.9, 0.8)
    (-0.9, 'metrics.acc', True)
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SpecError

GOALS = ("minimize", "maximize")


@dataclass(frozen=True)
class Metric:
    """A metric's name and whether lower (``minimize``) or higher is better."""

    name: str
    goal: str = "minimize"

    def __post_init__(self) -> None:
        if self.goal not in GOALS:
            raise SpecError("metric.goal", self.goal, "one of " + ", ".join(GOALS))

    @property
    def sign(self) -> float:
        """+1.0 when lower is better, -1.0 when higher is."""
        return 1.0 if self.goal == "minimize" else -1.0

    @property
    def column(self) -> str:
        """The metric's column in the results table."""
        return f"metrics.{self.name}"

    def loss(self, value: float) -> float:
        """``value`` as a quantity to minimise (NaN stays NaN).

        Example: ``Metric("acc", "maximize").loss(0.9) == -0.9``
        """
        return value if self.goal == "minimize" else -value

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return self.loss(a) < self.loss(b)


__all__ = ["GOALS", "Metric"]
