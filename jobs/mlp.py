"""A real, fast training job: a one-hidden-layer MLP in plain numpy on the 8x8 digits data.

The network is ``64 -> hidden (ReLU, optional dropout 0.5) -> 10 (softmax)``, trained with
mini-batch cross-entropy plus an L2 penalty, using SGD, Adam or RMSprop written by hand. The
data ship with the repository (``jobs/data/digits.npz``: 1797 images, 64 uint8 features in
0..16, labels 0..9) and are split once, with a fixed seed, into 1437 training and 360
validation samples, so every trial of a sweep is scored on the same validation set.

One epoch takes a few milliseconds to a few tens of milliseconds on one core, and the job is
deterministic for a given config (the ``seed`` key drives initialisation, shuffling and
dropout). Wild configs never raise: a run whose loss overflows stops early and reports a
large finite ``train_loss`` and the chance-level ``val_error`` (about 0.9).

Use it from a sweep file as ``objective: jobs.mlp:train``, or directly:

>>> result = train({"lr": 0.05, "hidden": 32, "optimizer": "sgd", "epochs": 2})
>>> sorted(result)
['epochs', 'train_loss', 'val_error']
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import sweep

__all__ = [
    "DATA_PATH",
    "DEFAULTS",
    "DIVERGED_LOSS",
    "OPTIMIZERS",
    "MLPConfig",
    "load_split",
    "parse_bool",
    "parse_config",
    "train",
]

#: Where the digits data live (next to this file, so any working directory works).
DATA_PATH = Path(__file__).resolve().parent / "data" / "digits.npz"

#: Seed and size of the fixed train/validation split (independent of the trial's ``seed``).
SPLIT_SEED = 0
VAL_SIZE = 360

#: The optimizers :func:`train` implements.
OPTIMIZERS = ("sgd", "adam", "rmsprop")

#: Values used for keys a config leaves out.
DEFAULTS: dict[str, Any] = {
    "lr": 0.01,
    "hidden": 64,
    "batch_size": 32,
    "optimizer": "adam",
    "dropout": False,
    "weight_decay": 0.0,
    "epochs": 10,
    "seed": 0,
    "checkpoint": False,
}

#: ``train_loss`` reported by a run whose loss overflowed (and the cap on any reported loss).
DIVERGED_LOSS = 1.0e6

_DROP_P = 0.5  # dropout rate on the hidden layer when ``dropout`` is on
_N_CLASSES = 10
_BETA1, _BETA2, _RHO, _EPS = 0.9, 0.999, 0.9, 1e-8

_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0"})


@dataclass(frozen=True)
class MLPConfig:
    """A validated training config (see :func:`parse_config`).

    >>> MLPConfig(0.1, 32, 16, "sgd", False, 0.0, 3, 0).hidden
    32
    """

    lr: float
    hidden: int
    batch_size: int
    optimizer: str
    dropout: bool
    weight_decay: float
    epochs: int
    seed: int
    checkpoint: bool = False


def parse_bool(value: Any) -> bool:
    """Read a boolean from a bool, a 0/1 number or a string like ``true``/``False``/``1``/``0``.

    >>> parse_bool("False"), parse_bool(1), parse_bool("true")
    (False, True, True)
    """
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.integer | np.floating) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError(f"expected a boolean (true/false/1/0), got {value!r}")


def _parse_int(key: str, value: Any) -> int:
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{key} must be an integer, got {value!r}")
    number = float(value)
    if not number.is_integer():
        raise ValueError(f"{key} must be an integer, got {value!r}")
    return int(number)


def _parse_float(key: str, value: Any) -> float:
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{key} must be a number, got {value!r}")
    number = float(value)
    if math.isnan(number):
        raise ValueError(f"{key} must be a number, got {value!r}")
    return number


def parse_config(config: Mapping[str, Any]) -> MLPConfig:
    """Validate a trial config, filling missing keys from :data:`DEFAULTS`.

    Numbers may arrive as strings (``"1e-3"``) and booleans as ``"true"``/``0``; keys this
    job does not know are ignored. Raises ``ValueError`` for values that make no sense.

    >>> parse_config({"lr": "1e-3", "optimizer": "SGD", "dropout": "true"}).optimizer
    'sgd'
    """
    merged = {**DEFAULTS, **config}
    cfg = MLPConfig(
        lr=_parse_float("lr", merged["lr"]),
        hidden=_parse_int("hidden", merged["hidden"]),
        batch_size=_parse_int("batch_size", merged["batch_size"]),
        optimizer=str(merged["optimizer"]).strip().lower(),
        dropout=parse_bool(merged["dropout"]),
        weight_decay=_parse_float("weight_decay", merged["weight_decay"]),
        epochs=_parse_int("epochs", merged["epochs"]),
        seed=_parse_int("seed", merged["seed"]),
        checkpoint=parse_bool(merged["checkpoint"]),
    )
    if cfg.lr <= 0:
        raise ValueError(f"lr must be > 0, got {cfg.lr}")
    if cfg.hidden < 1:
        raise ValueError(f"hidden must be >= 1, got {cfg.hidden}")
    if cfg.batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {cfg.batch_size}")
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {merged['optimizer']!r}")
    if cfg.weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {cfg.weight_decay}")
    if cfg.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {cfg.epochs}")
    return cfg


@functools.cache
def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load the digits and return the fixed split ``(x_train, y_train, x_val, y_val)``.

    Features are scaled to ``[0, 1]`` (float32), labels are int64. The arrays are cached
    and read-only.

    >>> x_train, y_train, x_val, y_val = load_split()
    >>> x_train.shape, x_val.shape, int(y_val.max())
    ((1437, 64), (360, 64), 9)
    """
    with np.load(DATA_PATH) as data:
        features = data["X"].astype(np.float32) / np.float32(16.0)
        labels = data["y"].astype(np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    val_idx, train_idx = order[:VAL_SIZE], order[VAL_SIZE:]
    arrays = (features[train_idx], labels[train_idx], features[val_idx], labels[val_idx])
    for array in arrays:
        array.flags.writeable = False
    return arrays


class _Optimizer:
    """In-place parameter updates for plain SGD, Adam or RMSprop."""

    def __init__(self, kind: str, lr: float, params: list[np.ndarray]) -> None:
        self.kind = kind
        self.lr = lr
        self.step_count = 0
        self.m = [np.zeros_like(p) for p in params] if kind == "adam" else []
        self.v = [np.zeros_like(p) for p in params] if kind in ("adam", "rmsprop") else []

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        if self.kind == "sgd":
            for p, g in zip(params, grads):
                p -= self.lr * g
        elif self.kind == "rmsprop":
            for p, g, v in zip(params, grads, self.v):
                v *= _RHO
                v += (1.0 - _RHO) * g * g
                p -= self.lr * g / (np.sqrt(v) + _EPS)
        else:  # adam
            self.step_count += 1
            t = self.step_count
            step = self.lr * math.sqrt(1.0 - _BETA2**t) / (1.0 - _BETA1**t)
            for p, g, m, v in zip(params, grads, self.m, self.v):
                m *= _BETA1
                m += (1.0 - _BETA1) * g
                v *= _BETA2
                v += (1.0 - _BETA2) * g * g
                p -= step * m / (np.sqrt(v) + _EPS)


def _chance_error(y_train: np.ndarray, y_val: np.ndarray) -> float:
    """Validation error of always predicting the most common training label (about 0.9)."""
    majority = int(np.argmax(np.bincount(y_train, minlength=_N_CLASSES)))
    return float(np.mean(y_val != majority))


def _val_error(x_val: np.ndarray, y_val: np.ndarray, params: list[np.ndarray]) -> float:
    """The misclassified fraction of the validation set (1.0 when the model overflowed)."""
    w1, b1, w2, b2 = params
    logits = np.maximum(x_val @ w1 + b1, 0.0) @ w2 + b2
    if not np.isfinite(logits).all():
        return 1.0
    return float(np.mean(np.argmax(logits, axis=1) != y_val))


def _save_state(folder: str, epoch: int, params: list[np.ndarray],
                optimizer: _Optimizer) -> None:
    """The model and optimizer state after ``epoch``, as plain arrays (no pickle)."""
    arrays = {f"p{i}": p for i, p in enumerate(params)}
    arrays.update({f"m{i}": m for i, m in enumerate(optimizer.m)})
    arrays.update({f"v{i}": v for i, v in enumerate(optimizer.v)})
    arrays["meta"] = np.array([epoch, optimizer.step_count], dtype=np.int64)
    np.savez(os.path.join(folder, "state.npz"), **arrays)


def _load_state(folder: str, params: list[np.ndarray], optimizer: _Optimizer) -> int:
    """Load a state saved by ``_save_state`` into ``params`` and ``optimizer`` (in place;
    the optimizer keeps its own kind and learning rate: a PBT segment's lr is its own);
    returns the epoch it was saved after."""
    with np.load(os.path.join(folder, "state.npz"), allow_pickle=False) as data:
        for i, p in enumerate(params):
            p[...] = data[f"p{i}"]
        for name, slots in (("m", optimizer.m), ("v", optimizer.v)):
            for i, slot in enumerate(slots):
                if f"{name}{i}" in data:
                    slot[...] = data[f"{name}{i}"]
        epoch, steps = (int(v) for v in data["meta"])
    optimizer.step_count = steps
    return epoch


def train(config: Mapping[str, Any], *, report: Callable[..., Any] = sweep.report,
          restore: Callable[[], str | None] = sweep.restore) -> dict[str, float | int]:
    """Train the MLP with ``config`` and return its metrics.

    Keys: ``lr`` (float), ``hidden`` (int units), ``batch_size`` (int), ``optimizer``
    (``"sgd"``, ``"adam"`` or ``"rmsprop"``), ``dropout`` (bool: dropout 0.5 on the hidden
    layer while training), ``weight_decay`` (float, L2 coefficient on the weight matrices),
    ``epochs`` (int) and ``seed`` (int, default 0); missing keys take :data:`DEFAULTS`.

    ``checkpoint`` (bool, default False): save the model and optimizer state with every
    epoch's report (``sweep.report(checkpoint=...)``) and start from the checkpoint
    ``sweep.restore()`` gives (a retried trial, a PBT segment: then with this config's
    ``lr``, the schedule PBT finds). ``epochs`` counts from the first epoch, restored
    ones included. ``report`` and ``restore`` are sweep's by default; another
    orchestrator passes its own (the PBT benchmark runs this job under Ray Tune).

    Returns ``val_error`` (misclassified fraction of the validation set, in ``[0, 1]``),
    ``train_loss`` (mean cross-entropy over the last epoch's mini-batches, without the L2
    term, capped at :data:`DIVERGED_LOSS`) and ``epochs`` (epochs run; fewer than asked
    when the loss overflowed, which stops training and reports :data:`DIVERGED_LOSS` with
    the chance-level ``val_error``). All values are finite.

    >>> metrics = train({"lr": 0.003, "hidden": 64, "batch_size": 32, "optimizer": "adam",
    ...                  "dropout": False, "weight_decay": 1e-5, "epochs": 3})
    >>> metrics["val_error"] < 0.2, metrics["epochs"]
    (True, 3)
    >>> train({"lr": 1e8, "optimizer": "sgd", "epochs": 2})  # overflows: stops, no exception
    {'val_error': 0.9194444444444444, 'train_loss': 1000000.0, 'epochs': 1}
    """
    cfg = parse_config(config)
    x_train, y_train, x_val, y_val = load_split()
    n_train, n_features = x_train.shape
    rng = np.random.default_rng(cfg.seed)

    # float32 throughout: half the memory traffic of float64, and plenty for this model.
    w1 = rng.standard_normal((n_features, cfg.hidden), dtype=np.float32)
    w1 *= np.float32(math.sqrt(2.0 / n_features))
    b1 = np.zeros(cfg.hidden, dtype=np.float32)
    w2 = rng.standard_normal((cfg.hidden, _N_CLASSES), dtype=np.float32)
    w2 *= np.float32(math.sqrt(1.0 / cfg.hidden))
    b2 = np.zeros(_N_CLASSES, dtype=np.float32)
    params = [w1, b1, w2, b2]
    optimizer = _Optimizer(cfg.optimizer, cfg.lr, params)

    batch_size = min(cfg.batch_size, n_train)
    wd = cfg.weight_decay
    diverged = False
    epoch_loss = DIVERGED_LOSS
    epochs_run = 0
    folder = tempfile.mkdtemp(prefix="mlp-ckpt-") if cfg.checkpoint else None
    restored = restore() if cfg.checkpoint else None
    if restored is not None:
        epochs_run = _load_state(restored, params, optimizer)
        epoch_loss = 0.0
    with contextlib.ExitStack() as cleanup, np.errstate(all="ignore"):
        if folder is not None:
            cleanup.callback(shutil.rmtree, folder, True)
        while epochs_run < cfg.epochs:
            epochs_run += 1
            if restored is not None:  # shuffles that depend on the epoch, not the history
                rng = np.random.default_rng([cfg.seed, epochs_run])
            order = rng.permutation(n_train)
            total = 0.0
            for start in range(0, n_train, batch_size):
                idx = order[start : start + batch_size]
                xb, yb = x_train[idx], y_train[idx]
                rows = np.arange(len(idx))

                z1 = xb @ w1 + b1
                active = z1 > 0
                h = z1 * active
                if cfg.dropout:
                    keep = rng.random(h.shape, dtype=np.float32) >= _DROP_P
                    keep = keep * np.float32(1.0 / (1.0 - _DROP_P))
                    h *= keep
                logits = h @ w2 + b2
                logits -= logits.max(axis=1, keepdims=True)
                exp = np.exp(logits)
                norm = exp.sum(axis=1, keepdims=True)
                loss = float(np.log(norm[:, 0]).sum(dtype=np.float64))
                loss -= float(logits[rows, yb].sum(dtype=np.float64))
                if not math.isfinite(loss):
                    diverged = True
                    break
                total += loss

                dlogits = exp / norm
                dlogits[rows, yb] -= 1.0
                dlogits /= len(idx)
                gw2 = h.T @ dlogits
                gb2 = dlogits.sum(axis=0)
                dh = dlogits @ w2.T
                dh *= active
                if cfg.dropout:
                    dh *= keep
                gw1 = xb.T @ dh
                gb1 = dh.sum(axis=0)
                if wd:
                    gw1 += wd * w1
                    gw2 += wd * w2
                optimizer.step(params, [gw1, gb1, gw2, gb2])
            if diverged:
                break
            epoch_loss = total / n_train
            # One report per epoch: learning curves, and early stopping by the sweep's
            # rule (a no-op outside a sweep); with its checkpoint when asked.
            if folder is not None:
                _save_state(folder, epochs_run, params, optimizer)
            report(step=epochs_run, checkpoint=folder,
                   val_error=_val_error(x_val, y_val, params),
                   train_loss=min(epoch_loss, DIVERGED_LOSS))

        logits = np.maximum(x_val @ w1 + b1, 0.0) @ w2 + b2
        if diverged or not np.isfinite(logits).all() or not math.isfinite(epoch_loss):
            val_error = _chance_error(y_train, y_val)
            epoch_loss = DIVERGED_LOSS
        else:
            val_error = float(np.mean(np.argmax(logits, axis=1) != y_val))

    return {
        "val_error": val_error,
        "train_loss": float(min(epoch_loss, DIVERGED_LOSS)),
        "epochs": epochs_run,
    }
