"""The tracking interface the library talks to (STYLE 8).

Library steps take a ``tracker`` argument typed as :class:`Tracker` and default to a
:class:`NullTracker`. The MLflow implementation lives with the orchestration (it is
the only place that imports mlflow); :class:`ConsoleTracker` prints, for the CLI.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, TextIO, runtime_checkable


@runtime_checkable
class Tracker(Protocol):
    """Where a step reports its settings, metrics and files."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record settings (nested mappings are flattened to dotted keys by implementations)."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record numeric values, optionally at a step (epoch, iteration)."""

    def log_artifact(self, path: str | Path) -> None:
        """Keep a file or a folder with the run."""

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Attach string labels to the run."""


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; sequences stay values."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class NullTracker:
    """The default tracker: records nothing."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        pass

    def log_artifact(self, path: str | Path) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass


class ConsoleTracker:
    """Prints one JSON line per call (to stderr by default, keeping stdout for results)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def _emit(self, kind: str, payload: Any, **extra: Any) -> None:
        stream = self._stream or sys.stderr
        record = {"tracker": kind, **extra, "values": payload}
        stream.write(json.dumps(record, default=str, sort_keys=True) + "\n")
        stream.flush()

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._emit("params", flatten(params))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._emit("metrics", {k: float(v) for k, v in metrics.items()}, step=step)

    def log_artifact(self, path: str | Path) -> None:
        self._emit("artifact", str(path))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._emit("tags", {k: str(v) for k, v in tags.items()})
