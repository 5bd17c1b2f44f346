"""Run logging: a JSON-lines metrics file and, when the package is installed, TensorBoard.

Only rank 0 creates a MetricsLogger. Console progress (tqdm) belongs to the CLI layer, which
receives the same records through the trainer's callback.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _plain(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


class MetricsLogger:
    """Appends one JSON object per record to ``RUN_DIR/metrics.jsonl``; mirrors scalars to
    TensorBoard."""

    def __init__(self, run_dir: str | os.PathLike[str], *, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torn = (
            self.path.is_file()
            and self.path.stat().st_size > 0
            and not _ends_with_newline(self.path)
        )
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        if torn:  # a killed run left half a line: start on a fresh one
            self._fh.write("\n")
        self._tb: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except Exception:  # tensorboard is optional
                log.debug("tensorboard is not installed; metrics go to %s only", self.path)
            else:
                self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tb"))

    def log(self, record: Mapping[str, Any]) -> None:
        rec = {"time": round(time.time(), 3), **{k: _plain(v) for k, v in record.items()}}
        self._fh.write(json.dumps(rec, sort_keys=False) + "\n")
        self._fh.flush()
        if self._tb is not None and "step" in record:
            step = int(record["step"])
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(run: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All records of ``RUN_DIR/metrics.jsonl``, or of the ``.jsonl`` file given (a torn line from
    a killed run, or a line that is not a JSON object, is skipped)."""
    path = Path(run)
    if path.is_dir():
        path = path / "metrics.jsonl"
    out: list[dict[str, Any]] = []
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out
