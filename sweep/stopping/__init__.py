"""Early stopping rules (``early_terminate:`` in the sweep file): pure decisions on
intermediate reports, no Ray and no I/O. The engine asks ``rule.should_stop(trial_id,
step, value)`` at every report and stops the trials it names.

One module per rule, as Optuna's ``pruners``:

* ``type: hyperband`` (``hyperband.HyperbandRule``): W&B's own early terminator, bands
  from ``min_iter`` or ``max_iter`` + ``s`` and ``eta``, ``strict``.
* ``type: asha`` (``asha.AshaRule``): asynchronous successive halving as in Ray Tune's
  ``AsyncHyperBandScheduler`` (rungs, top 1/eta, brackets).
* ``type: median`` (``median.MedianRule``): the median stopping rule (Vizier; Optuna's
  ``MedianPruner``, Ray Tune's ``MedianStoppingRule``).

``base`` holds ``StoppingRule`` and the conventions every rule keeps, ``settings`` the
reading of a rule's settings, ``registry`` the rules by name (``parse_rule``), ``replay``
the rebuilding of a rule from stored reports.

Example:
    >>> from sweep.core.metric import Metric
    >>> rule = parse_rule({"type": "hyperband", "min_iter": 1, "eta": 2}, Metric("loss"))
    >>> [rule.should_stop(t, 1, v) for t, v in [("a", 0.5), ("b", 0.4), ("c", 0.9)]]
    [False, False, True]
"""

from .asha import AshaRule
from .base import StoppingRule
from .hyperband import HyperbandRule
from .median import MedianRule
from .registry import REGISTRY, parse_rule
from .replay import replay

__all__ = ["REGISTRY", "AshaRule", "HyperbandRule", "MedianRule", "StoppingRule",
           "parse_rule", "replay"]
