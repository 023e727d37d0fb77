"""The digits MLP of :mod:`jobs.mlp`, in PyTorch, on the GPU Ray assigned to the trial.

Same data, split, config keys, architecture, initialisation scheme and optimizers (SGD, Adam
and RMSprop from ``torch.optim``, with the L2 penalty on the weight matrices only) as the
numpy job, so the two give comparable numbers. Ray sets ``CUDA_VISIBLE_DEVICES`` for a trial
that asked for ``num_gpus``, so ``cuda`` (device 0) is the GPU it was given; without a GPU the
job runs on the CPU.

PyTorch is an optional extra (``pip install 'sweep[torch]'``). This module imports without
it; :func:`train` then raises an ``ImportError`` that says what to install. Use it from a
sweep file as ``objective: jobs.torch_mlp:train`` (see ``jobs/torch_mlp.yaml``):

>>> metrics = train({"lr": 0.003, "optimizer": "adam", "epochs": 1})  # doctest: +SKIP
>>> sorted(metrics)  # doctest: +SKIP
['cuda', 'epochs', 'train_loss', 'val_error']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from .mlp import DIVERGED_LOSS, load_split, parse_config

__all__ = ["import_torch", "train"]

_INSTALL_HINT = "jobs.torch_mlp needs PyTorch, an optional extra: pip install 'sweep[torch]'"


def import_torch() -> ModuleType:
    """Import and return ``torch``, or raise an ``ImportError`` saying how to install it.

    >>> import_torch().__name__  # doctest: +SKIP
    'torch'
    """
    try:
        import torch
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return torch


def train(config: Mapping[str, Any]) -> dict[str, float | int]:
    """Train the MLP with PyTorch and return its metrics.

    Takes the config keys of :func:`jobs.mlp.train`. Returns ``val_error``, ``train_loss``
    and ``epochs`` as that job does (a run whose loss overflows stops and reports
    :data:`jobs.mlp.DIVERGED_LOSS` with the chance-level error), plus ``cuda``: ``1.0``
    when it trained on a GPU, ``0.0`` on the CPU (metrics are numbers, so the device is a
    flag rather than a name).

    >>> train({"lr": 0.003, "hidden": 64, "optimizer": "adam", "epochs": 3})  # doctest: +SKIP
    {'val_error': 0.025, 'train_loss': 0.27..., 'epochs': 3, 'cuda': 1.0}
    """
    torch = import_torch()
    cfg = parse_config(config)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)  # dropout masks (seeds the CUDA generators too)
    gen = torch.Generator().manual_seed(cfg.seed)  # initialisation and shuffling, on the CPU

    x_train_np, y_train_np, x_val_np, y_val_np = load_split()
    x_train = torch.tensor(x_train_np, dtype=torch.float32, device=device)
    y_train = torch.tensor(y_train_np, dtype=torch.int64, device=device)
    x_val = torch.tensor(x_val_np, dtype=torch.float32, device=device)
    y_val = torch.tensor(y_val_np, dtype=torch.int64, device=device)
    n_train, n_features = x_train.shape
    n_classes = 10

    layer1 = torch.nn.Linear(n_features, cfg.hidden)
    layer2 = torch.nn.Linear(cfg.hidden, n_classes)
    with torch.no_grad():
        for layer, fan_in, gain in ((layer1, n_features, 2.0), (layer2, cfg.hidden, 1.0)):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen))
            layer.weight.mul_(math.sqrt(gain / fan_in))
            layer.bias.zero_()
    hidden_layers: list[Any] = [layer1, torch.nn.ReLU()]
    if cfg.dropout:
        hidden_layers.append(torch.nn.Dropout(0.5))
    model = torch.nn.Sequential(*hidden_layers, layer2).to(device)

    groups = [
        {"params": [layer1.weight, layer2.weight], "weight_decay": cfg.weight_decay},
        {"params": [layer1.bias, layer2.bias], "weight_decay": 0.0},
    ]
    if cfg.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=cfg.lr)
    elif cfg.optimizer == "adam":
        optimizer = torch.optim.Adam(groups, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
    else:
        optimizer = torch.optim.RMSprop(groups, lr=cfg.lr, alpha=0.9, eps=1e-8)

    batch_size = min(cfg.batch_size, n_train)
    epoch_loss = DIVERGED_LOSS
    diverged = False
    epochs_run = 0
    for _ in range(cfg.epochs):
        epochs_run += 1
        model.train()
        order = torch.randperm(n_train, generator=gen).to(device)
        total = torch.zeros((), dtype=torch.float64, device=device)
        for start in range(0, n_train, batch_size):
            idx = order[start : start + batch_size]
            loss_sum = torch.nn.functional.cross_entropy(
                model(x_train[idx]), y_train[idx], reduction="sum"
            )
            optimizer.zero_grad(set_to_none=True)
            (loss_sum / len(idx)).backward()
            optimizer.step()
            total += loss_sum.detach()
        epoch_total = float(total.item())  # one device sync per epoch
        if not math.isfinite(epoch_total):
            diverged = True
            break
        epoch_loss = epoch_total / n_train

    model.eval()
    with torch.no_grad():
        logits = model(x_val)
        finite = bool(torch.isfinite(logits).all().item())
        val_error = float((logits.argmax(dim=1) != y_val).double().mean().item())
    if diverged or not finite:
        majority = int(torch.bincount(y_train, minlength=n_classes).argmax().item())
        val_error = float((y_val != majority).double().mean().item())
        epoch_loss = DIVERGED_LOSS

    return {
        "val_error": val_error,
        "train_loss": float(min(epoch_loss, DIVERGED_LOSS)),
        "epochs": epochs_run,
        "cuda": 1.0 if device.type == "cuda" else 0.0,
    }
