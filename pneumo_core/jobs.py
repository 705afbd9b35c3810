"""One training job at a time, run as a separate ``train.py`` process that any page view can follow.

The job's facts live on disk under the runs folder (``current_job.json``, the
run's progress file and log), so a reloaded page, another browser or another
server process sees the same job. Starting takes an exclusive lock file;
a finished, failed or vanished job releases it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from .config import PROJECT_ROOT, runs_dir
from .progress import JobStatus, job_status

JOB_FILE = "current_job.json"


class JobError(RuntimeError):
    """A job cannot be started or changed; the message says why."""


@dataclass(frozen=True)
class Job:
    run_name: str
    pid: int
    run_dir: str
    progress_file: str
    log_file: str
    started: str

    def status(self) -> JobStatus:
        return job_status(Path(self.progress_file))

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(Path(self.log_file).read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def current_job(root: Path | None = None) -> Job | None:
    path = Path(root or runs_dir()) / JOB_FILE
    try:
        return Job(**json.loads(path.read_text()))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def start_job(train_args: list[str], root: Path | None = None) -> Job:
    """Launch ``train.py`` with the given flags (``--run-name`` etc. are set here) unless a job is running."""
    root = Path(root or runs_dir())
    root.mkdir(parents=True, exist_ok=True)
    lock = root / "job.lock"
    previous = current_job(root)
    if previous and previous.status().state == "running":
        raise JobError(f"A training job is already running ({previous.run_name}); only one runs at a time.")
    if previous or lock.exists():
        lock.unlink(missing_ok=True)  # the previous job has ended: its lock is stale
    try:
        descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # atomic: one starter wins
    except FileExistsError:
        raise JobError("Another training job is being started right now.") from None
    os.close(descriptor)
    run_name = datetime.now(UTC).strftime("app-%Y%m%d-%H%M%S")
    run_dir = root / run_name
    run_dir.mkdir(parents=True)
    progress, log = run_dir / "progress.jsonl", run_dir / "train.log"
    command = [
        sys.executable,
        str(PROJECT_ROOT / "train.py"),
        *train_args,
        "--output-dir",
        str(root),
        "--run-name",
        run_name,
        "--progress-file",
        str(progress),
    ]
    with log.open("w") as handle:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    job = Job(run_name, process.pid, str(run_dir), str(progress), str(log), datetime.now(UTC).isoformat(timespec="seconds"))
    (root / JOB_FILE).write_text(json.dumps(asdict(job), indent=2))
    return job


def cancel_job(job: Job, force: bool = False) -> None:
    """Ask the job to stop, or kill it.

    SIGTERM is handled between training steps: the run records itself as
    cancelled and MLflow marks it KILLED. While TensorFlow compiles a graph (a
    minute or so at the start of a phase) it cannot react; ``force`` sends
    SIGKILL, and the job then reads as failed because its process is gone.
    Neither touches the served model.
    """
    try:
        os.kill(job.pid, signal.SIGKILL if force else signal.SIGTERM)
    except ProcessLookupError:
        pass
