"""A training script written for W&B sweeps, the way W&B's documentation writes them:
no command-line arguments, defaults passed to ``wandb.init()``, every hyperparameter
read from ``wandb.config``, metrics sent with ``wandb.log``. Run it as a program (W&B's
command agent) or call ``train()`` (W&B's function agent, ``wandb.agent(sweep_id,
function=train)``). It knows nothing about sweep.

The "model" is a formula, so the tests can check every logged number; ``sleep_s``
makes an epoch take time (live tailing), ``fail_at_epoch`` makes it crash.
"""

import json
import time

import wandb

DEFAULTS = {
    "lr": 0.1,
    "layers": 1,
    "epochs": 5,
    "optimizer": {"name": "sgd", "momentum": 0.0},
    "sleep_s": 0.0,
    "fail_at_epoch": -1,
}


def epoch_metrics(lr, layers, momentum, epoch):
    """The loss and accuracy the script logs after ``epoch`` (0-based)."""
    loss = 1.0 / (1.0 + lr * layers * (1.0 + momentum) * (epoch + 1))
    return {"loss": loss, "acc": 1.0 - loss}


def train(config=None):
    run = wandb.init(config=DEFAULTS)
    config = wandb.config
    # What the run was handed, on one line that is not a JSON object (so a wrapper
    # looking for a JSON result line does not take it for the metrics).
    print("config: " + json.dumps(dict(config), sort_keys=True),
          flush=True)
    best = 0.0
    for epoch in range(config.epochs):
        if epoch == config.fail_at_epoch:
            raise RuntimeError(f"diverged at epoch {epoch}")
        m = epoch_metrics(config.lr, config.layers, config.optimizer["momentum"], epoch)
        best = max(best, m["acc"])
        wandb.log({
            "epoch": epoch,
            "loss": m["loss"],
            "acc": m["acc"],
            "grad": {"norm": config.lr * (epoch + 1)},
            "phase": "train",
        })
        time.sleep(config.sleep_s)
    run.summary["best_acc"] = best
    run.finish()


if __name__ == "__main__":
    train()
