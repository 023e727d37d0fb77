"""The machine line every benchmark prints, so its figures can be pasted with context."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence


def machine(modules: Sequence[str] = ("ray",)) -> str:
    """Cores, CPU model, OS, Python and the versions of ``modules``.

    Example: ``machine(("ray", "optuna"))``
    """
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = []
    for mod in modules:
        try:
            versions.append(f"{mod.capitalize()} {__import__(mod).__version__}")
        except ImportError:
            versions.append(f"{mod} not installed")
    return (f"{os.cpu_count()} cores ({model}); {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}; " + "; ".join(versions))
