"""Stopping rules: pure decisions on intermediate reports (ASHA, Hyperband, median),
no Ray and no I/O. The engine feeds them reports and stops the trials they name.

Example:
    >>> from sweep.stopping import parse_rule
    >>> rule = parse_rule({"type": "median", "min_iter": 2}, "loss", "minimize")
"""

from .rules import AshaRule, HyperbandRule, MedianRule, StoppingRule, parse_rule, replay

__all__ = ["AshaRule", "HyperbandRule", "MedianRule", "StoppingRule", "parse_rule", "replay"]
