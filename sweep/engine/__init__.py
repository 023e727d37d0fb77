"""The engine: runs a sweep. ``runner`` wires a spec, a store and a pool together; the
``driver`` is the policy loop (no Ray); ``ray_pool`` and ``report_hub`` are its Ray side;
``ray_jobs`` submits a sweep to a cluster; ``planning`` builds each stage's plan;
``proposals`` runs a learning plan on a background thread; ``progress`` draws the
progress line.

Example:
    >>> from sweep.engine import run
    >>> df = run("jobs/mlp.yaml")                          # doctest: +SKIP
"""

from .runner import execute, run

__all__ = ["execute", "run"]
