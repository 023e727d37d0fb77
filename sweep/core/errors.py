"""The exceptions users see; each names where the problem is and what was expected."""

from __future__ import annotations

from typing import Any

_MISSING = object()


def _show(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SpecError(ValueError):
    """A sweep file, CLI flag or Python spec that cannot be run.

    The message names the path of the bad field, the value found and what was
    expected, e.g. ``parameters.lr.min: got -1.0, expected a number > 0``.

    Example:
        >>> str(SpecError("stages[1].top_k", 0, "an integer >= 1"))
        'stages[1].top_k: got 0, expected an integer >= 1'
    """

    def __init__(self, path: str, value: Any = _MISSING, expected: str = "", hint: str = ""):
        # Warnings raised while the file was read, shown after the error (sweep.spec.sweep_file).
        self.notes: list[str] = []
        self.path = path
        self.value = None if value is _MISSING else value
        self.expected = expected
        parts = [path + ":"]
        if value is not _MISSING:
            parts.append(f"got {_show(value)},")
        if expected:
            parts.append(f"expected {expected}")
        message = " ".join(parts).rstrip(",")
        if hint:
            message += f" ({hint})"
        super().__init__(message)

    def under(self, prefix: str) -> SpecError:
        """The same error with its path placed under ``prefix``."""
        path = f"{prefix}.{self.path}" if self.path and not self.path.startswith("[") else (
            prefix + self.path
        )
        err = SpecError.__new__(SpecError)
        ValueError.__init__(err, path + str(self)[len(self.path):])
        err.path, err.value, err.expected = path, self.value, self.expected
        err.notes = list(self.notes)
        return err


class SweepError(RuntimeError):
    """A sweep that cannot go on (results not writable, another driver, no anchors)."""
