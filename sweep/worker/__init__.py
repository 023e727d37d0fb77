"""What runs inside a Ray task: the task body (``entry``, the worker's only contact with
Ray), the total wrapper around an objective (``wrapper``), trial ids (``trial_ids``),
command-line jobs (``command``), ``sweep.report`` from inside a trial
(``trial_reports``), checks of what an objective returned (``returned``) and W&B scripts
run offline (``wandb_offline``; ``wandb_guard`` keeps W&B offline whatever the script
asks, ``file_events`` wakes the reader of a run file when it changes). Light imports
only: every worker process loads this.

Example:
    >>> from sweep.worker import trial_id
    >>> len(trial_id("demo", 0, {"lr": 0.1}))
    16
"""

from .command import CommandError, ProgramExit
from .entry import run_batch
from .returned import Checked, check_result
from .trial_ids import canonical_json, trial_id
from .trial_reports import TrialStopped, report, restore
from .wrapper import BatchResult, Objective, run_trial

__all__ = ["BatchResult", "Checked", "CommandError", "Objective", "ProgramExit", "TrialStopped",
           "canonical_json", "check_result", "report", "restore", "run_batch", "run_trial",
           "trial_id"]
