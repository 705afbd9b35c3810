"""One training job at a time, run as a separate ``train.py`` process that any page view can follow.

The job's facts live on disk under the runs folder (``current_job.json``, the
run's progress file and log), so a reloaded page, another browser or another
server process sees the same job. Starting holds an exclusive
``flock`` from the check to the written job file (:func:`start_job`).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from pneumo_core.config import PROJECT_ROOT, runs_dir
from pneumo_core.jobs.progress import JobStatus, job_status, process_alive, process_start

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
    pid_started: int | None = None  # the process's start time (see progress.process_start): a reused PID is not it

    def status(self) -> JobStatus:
        """The progress file's verdict; before the run's first event, the process itself says (starting or gone)."""
        status = job_status(Path(self.progress_file))
        if status.state != "none":
            return status
        if process_alive(self.pid, self.pid_started):
            return JobStatus("running", [{"event": "starting", "time": time.time(), "pid": self.pid}])
        return JobStatus("failed", [{"event": "failed", "error": "The training process ended before reporting progress."}])

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(Path(self.log_file).read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def current_job(root: Path | None = None) -> Job | None:
    reap_finished()
    path = Path(root or runs_dir()) / JOB_FILE
    try:
        return Job(**json.loads(path.read_text()))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


_CHILDREN: list[subprocess.Popen] = []
"""Jobs this process started: polled so that a finished one is reaped instead of lingering as a zombie."""
_CHILDREN_LOCK = threading.Lock()
"""Every Streamlit session is a thread of one process: the list is changed under this lock."""


def reap_finished() -> None:
    with _CHILDREN_LOCK:
        for child in [child for child in _CHILDREN if child.poll() is not None]:
            _CHILDREN.remove(child)


def start_job(train_args: list[str], root: Path | None = None, script: Path = PROJECT_ROOT / "train.py") -> Job:
    """Launch ``train.py`` with the given flags (``--run-name`` etc. are set here) unless a job is running.

    An exclusive ``flock`` on ``job.lock`` is held from the check to the written job file, so two clicks, two
    browsers or two server processes cannot both start one; the kernel releases it if this process dies.
    """
    root = Path(root or runs_dir())
    root.mkdir(parents=True, exist_ok=True)
    with (root / "job.lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobError("Another training job is being started right now.") from None
        previous = current_job(root)
        if previous and previous.status().state == "running":
            raise JobError(f"A training job is already running ({previous.run_name}); only one runs at a time.")
        run_name = datetime.now(UTC).strftime("app-%Y%m%d-%H%M%S-%f")
        run_dir = root / run_name
        run_dir.mkdir(parents=True)
        progress, log = run_dir / "progress.jsonl", run_dir / "train.log"
        command = [sys.executable, str(script), *train_args, "--output-dir", str(root)]
        command += ["--run-name", run_name, "--progress-file", str(progress)]
        with log.open("w") as handle:
            process = subprocess.Popen(
                command,
                cwd=PROJECT_ROOT,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        with _CHILDREN_LOCK:
            _CHILDREN.append(process)
        started = datetime.now(UTC).isoformat(timespec="seconds")
        job = Job(run_name, process.pid, str(run_dir), str(progress), str(log), started, process_start(process.pid))
        staging = root / f"{JOB_FILE}.tmp"
        staging.write_text(json.dumps(asdict(job), indent=2))
        staging.replace(root / JOB_FILE)
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
