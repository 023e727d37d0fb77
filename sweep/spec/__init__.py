"""The sweep file: a YAML (or dict) spec read safely (``safe_yaml``), its parameters
(``parameters``), stages (``stages``), the stopping rule of ``early_terminate:``
(``early_terminate``), W&B's names and methods (``wandb_names``), checked and resolved
into one ``Spec`` (``sweep_file``).

Example:
    >>> from sweep.spec import loads_spec
    >>> spec = loads_spec("objective: m:f\\nparameters: {x: {min: 0.0, max: 1.0}}\\n"
    ...                   "stages: [{plan: random, trials: 4}]")
    >>> spec.stages[0].trials
    4
"""

from .stages import Stage
from .sweep_file import Metric, Resources, Spec, from_dict, load_spec, loads_spec, resume_problem

__all__ = ["Metric", "Resources", "Spec", "Stage", "from_dict", "load_spec", "loads_spec",
           "resume_problem"]
