"""Machine-readable training progress: JSON lines that another process can follow.

``train.py --progress-file FILE`` appends one JSON object per event; the app's
Training page reads the same file with :func:`read_progress`. Every event has
``event`` (``start``, ``loading`` (films decoded so far), ``building`` (a phase's model), ``phase`` (its
training starts, with the ``stage``: compiling the training graph), ``step``, ``epoch``, ``done``, ``failed``),
``time`` and ``pid``. A run that dies without a final event (killed with
SIGKILL, machine lost) is reported as failed by :func:`job_status` because its
process is gone.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FINAL_EVENTS = ("done", "failed")
CANCELLED = "cancelled"
"""The ``error`` of the final ``failed`` event of a run stopped on request (``train.py`` on SIGTERM)."""


class ProgressWriter:
    """Appends progress events to a JSON-lines file (line-buffered; each line is flushed)."""

    def __init__(self, path: Path | None):
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, event: str, **fields: Any) -> None:
        if not self.path:
            return
        record = {"event": event, "time": time.time(), "pid": os.getpid(), "pid_started": process_start(os.getpid()), **fields}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=float) + "\n")


def read_progress(path: Path) -> list[dict[str, Any]]:
    """All events in a progress file; a half-written last line is skipped."""
    events = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


@dataclass
class JobStatus:
    """What a progress file says about its run."""

    state: str  # "none", "running", "done", "cancelled" or "failed"
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last(self) -> dict[str, Any]:
        return self.events[-1] if self.events else {}


def process_start(pid: int) -> int | None:
    """When a process started (clock ticks since boot, from ``/proc``), or None where that cannot be read.

    With the PID it identifies one process: a PID reused by a later process has a later start."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def process_alive(pid: int, started: int | None = None) -> bool:
    """Whether process ``pid`` runs (not a zombie) and, when ``started`` is given, is the one that started then."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] == "Z":
            return False
    except OSError:
        return True
    return started is None or process_start(pid) in (None, started)


def job_status(path: Path) -> JobStatus:
    """The run's state: its final event if it wrote one, else running while its process lives, else failed."""
    events = read_progress(path)
    if not events:
        return JobStatus("none")
    last = events[-1]
    if last["event"] in FINAL_EVENTS:
        cancelled = last["event"] == "failed" and last.get("error") == CANCELLED
        return JobStatus("cancelled" if cancelled else last["event"], events)
    if process_alive(int(last.get("pid", -1)), last.get("pid_started")):
        return JobStatus("running", events)
    return JobStatus(
        "failed", events + [{"event": "failed", "error": "The training process stopped without finishing (killed or crashed)."}]
    )


LIBRARY_NOISE = (
    "I0000 ",
    "W0000 ",
    "oneDNN custom operations",
    "TF_ENABLE_ONEDNN_OPTS",
    "cuda",
    "absl::",
    "WARNING: All log",
    "UserWarning",
    "warnings.warn",
    "self.data_adapter",
    "XNNPACK",
    "rebuild TensorFlow",
    "Downloading data from",
    "!!!!",
    "cpu_feature_guard",
)


def readable_log(text: str, lines: int = 15) -> str:
    """The last ``lines`` lines of a training log without TensorFlow's and Python's library noise."""
    kept = [line for line in text.splitlines() if line.strip() and not any(noise in line for noise in LIBRARY_NOISE)]
    return "\n".join(kept[-lines:])


def describe(status: JobStatus, now: float) -> str:
    """One line for people: what the run is doing, elapsed time and, during an epoch, the time left in the phase."""
    events = status.events
    if not events:
        return "not started"
    elapsed = now - events[0].get("time", now)
    last = events[-1]
    kind = last["event"]
    if status.state != "running":
        return {"done": "finished", "cancelled": "cancelled", "failed": "failed"}.get(status.state, status.state)
    in_step = _clock(now - last.get("time", now))
    if kind == "starting" or kind == "start":
        doing = "starting: loading Python and TensorFlow"
    elif kind == "phase" and last.get("phase") == "loading":
        doing = f"loading {last.get('films', 0):,} films into memory"
    elif kind == "loading":
        doing = f"loading films into memory: {last.get('done', 0):,} of {last.get('films', 0):,}"
    elif kind == "phase" and last.get("phase") == "evaluate":
        doing = f"calibrating and evaluating on validation and internal test ({in_step} so far)"
    elif kind == "building":
        doing = f"{phase_words(last.get('phase'))}: building the model ({in_step} so far)"
    elif kind == "phase" and last.get("stage"):
        doing = f"{phase_words(last.get('phase'))}: {last['stage']} ({in_step} so far)"
    elif kind == "phase":
        doing = f"{phase_words(last.get('phase'))}: compiling the training graph (the first steps follow)"
    else:
        doing = f"{phase_words(last.get('phase'))} · epoch {last.get('epoch')}/{last.get('epochs')}"
        if last.get("step"):
            doing += f" · step {last['step']}/{last.get('steps')}"
        if last.get("eta_s"):
            doing += f" · about {last['eta_s'] / 60:.0f} min left in this phase"
    return f"{doing} · {_clock(elapsed)} elapsed"


PHASES = {"head": "training the head", "fine_tune": "fine-tuning the top of the network", "ensemble": "combining models"}
"""Plain words for ``train.py``'s phase names; ``scratch_128px`` and the like are read by :func:`phase_words`."""


def phase_words(phase: str | None) -> str:
    """A phase as people say it: ``scratch_128px`` → "training from scratch at 128 px"."""
    name = str(phase or "")
    if name.startswith("scratch_") and name.endswith("px"):
        return f"training from scratch at {name.removeprefix('scratch_').removesuffix('px')} px"
    return PHASES.get(name, name.replace("_", " "))


def _clock(seconds: float) -> str:
    """Whole minutes and seconds: 52 s is "0 min 52 s", not a rounded "1 min"."""
    minutes, rest = divmod(int(max(0.0, seconds)), 60)
    return f"{minutes} min {rest:02d} s"
