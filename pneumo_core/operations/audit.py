"""The operator-action log: who changed what is served, when, and how it ended.

One JSON line per action in ``runs/operator_actions.jsonl`` (:attr:`pneumo_core.config.Locations.audit_log`):
time, action, target (a model or profile name), outcome, actor and details. Never
patient data: no images, file names of uploads or DICOM fields reach it.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pneumo_core.config import locations

_WRITE_LOCK = threading.Lock()


def record_action(action: str, target: str, outcome: str, actor: str, path: Path | None = None, **details: Any) -> dict[str, Any]:
    """Append one action; returns the record written."""
    record = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "action": action,
        "target": target,
        "outcome": outcome,
        "actor": actor,
        **({"details": details} if details else {}),
    }
    path = Path(path or locations().audit_log)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _WRITE_LOCK, path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=str) + "\n")
    return record


def recent_actions(limit: int = 50, path: Path | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` actions, newest first (a half-written line is skipped)."""
    path = Path(path or locations().audit_log)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records[::-1][:limit]
