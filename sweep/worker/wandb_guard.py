"""W&B offline, whatever the trial's code asks: every ``wandb.Settings`` made in a
guarded process has an offline mode (``online``, ``shared`` and ``run`` become
``offline``; ``offline``, ``dryrun`` and ``disabled`` stay), so ``wandb.init(mode=
"online")``, ``wandb.init(settings=wandb.Settings(mode="online"))``, ``wandb.setup(...)``,
``WANDB_MODE=online`` set by the script itself and ``wandb.login()`` never reach W&B's
servers. ``Settings`` is where W&B resolves every one of those (its ``__init__`` and its
validated attribute assignment), so the guard holds there rather than at each entry point.

Two ways in: ``install()`` in this process (sweep's function-agent trials), and the
``wandb_site`` folder's ``sitecustomize`` for a trial's command (``PYTHONPATH`` puts it
first; it installs this guard at interpreter start and then runs the ``sitecustomize``
it shadows, if any). Either patches ``wandb.sdk.wandb_settings`` when it is imported,
or at once if it already is. Stdlib only, and loadable by path: the command's
interpreter may not have sweep installed.

Example:
    >>> install()
    >>> import wandb
    >>> wandb.Settings(mode="online").mode
    'offline'
"""

from __future__ import annotations

import sys
from typing import Any

SETTINGS_MODULE = "wandb.sdk.wandb_settings"
OFFLINE_MODES = ("offline", "dryrun", "disabled")
_PATCHED = "_sweep_forced_offline"


def offline_mode(mode: Any) -> Any:
    """The mode a guarded process gets for ``mode``: itself when it sends nothing
    (``OFFLINE_MODES``), else ``"offline"``.

    Example: ``offline_mode("online") == "offline"``; ``offline_mode("disabled") ==
    "disabled"``
    """
    return mode if mode in OFFLINE_MODES else "offline"


def patch(module: Any) -> None:
    """Make every ``Settings`` of W&B's settings module offline (idempotent)."""
    settings = getattr(module, "Settings", None)
    if settings is None or getattr(settings, _PATCHED, False):
        return
    original_init = settings.__init__
    original_setattr = settings.__setattr__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        mode = getattr(self, "mode", "offline")
        if offline_mode(mode) != mode:
            original_setattr(self, "mode", offline_mode(mode))

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if name == "mode":
            value = offline_mode(value)
        original_setattr(self, name, value)

    settings.__init__ = __init__
    settings.__setattr__ = __setattr__
    setattr(settings, _PATCHED, True)


class _Finder:
    """A meta-path finder that patches W&B's settings module right after it loads."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != SETTINGS_MODULE:
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(fullname, path)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        execute = loader.exec_module

        def exec_module(module: Any) -> None:
            execute(module)
            patch(module)

        loader.exec_module = exec_module  # this spec's own loader instance
        return spec


def install() -> None:
    """Guard this process: W&B's settings are patched now if loaded, else on import.

    Example: ``install()`` then ``wandb.init(mode="online")`` writes an offline run
    """
    module = sys.modules.get(SETTINGS_MODULE)
    if module is not None:
        patch(module)
    elif not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


__all__ = ["OFFLINE_MODES", "SETTINGS_MODULE", "install", "offline_mode", "patch"]
