"""What runs inside a Ray task: the total wrapper around an objective (``wrapper``),
command-line jobs (``command``), ``sweep.report`` from inside a trial
(``trial_reports``), checks of what an objective returned (``returned``) and W&B scripts
run offline (``wandb_offline``). Light imports only: every worker process loads this.

Example:
    >>> from sweep.worker import trial_id
    >>> len(trial_id("demo", 0, {"lr": 0.1}))
    16
"""

from .command import CommandError
from .returned import check_result
from .trial_reports import TrialStopped, report
from .wrapper import BatchResult, Objective, canonical_json, run_batch, run_trial, trial_id

__all__ = ["BatchResult", "CommandError", "Objective", "TrialStopped", "canonical_json",
           "check_result", "report", "run_batch", "run_trial", "trial_id"]
