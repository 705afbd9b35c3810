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

from pneumo_core.config import PROJECT_ROOT, locations
from pneumo_core.jobs.progress import (
    CANCELLED,
    FINAL_EVENTS,
    JobStatus,
    ProgressWriter,
    job_status,
    process_alive,
    process_start,
    read_progress,
)

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
        """The progress file's verdict, its events led by the launch (the clock runs from the click, not from the first
        event ``train.py`` writes once Python and TensorFlow are loaded); before the run's first event, the process
        itself says (starting or gone)."""
        try:
            launched = [{"event": "launched", "time": datetime.fromisoformat(self.started).timestamp(), "pid": self.pid}]
        except ValueError:  # a job file written without a time: the clock starts at the first event
            launched = []
        status = job_status(Path(self.progress_file))
        if status.state != "none":
            return JobStatus(status.state, [*launched, *status.events])
        if process_alive(self.pid, self.pid_started):
            return JobStatus("running", [*launched, {"event": "starting", "time": time.time(), "pid": self.pid}])
        return JobStatus("failed", [{"event": "failed", "error": "The training process ended before reporting progress."}])

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(Path(self.log_file).read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def current_job(root: Path | None = None) -> Job | None:
    reap_finished()
    path = Path(root or locations().runs_dir) / JOB_FILE
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
    root = Path(root or locations().runs_dir)
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


CANCEL_GRACE_S = 5.0
"""How long a cancelled run has to stop on its own (between training steps) before its process group is killed."""


def cancel_job(job: Job, grace_s: float = CANCEL_GRACE_S) -> JobStatus:
    """Stop the job within ``grace_s`` seconds, whatever it is doing, and return its final status (``cancelled``).

    SIGTERM goes to the job's whole process group (it runs in a session of its own): between training steps the run
    records itself as cancelled and MLflow marks it KILLED. A run that cannot react in time (Python still starting,
    TensorFlow compiling a graph) gets SIGKILL, and the cancellation is recorded in its progress file on its behalf.
    A process this server started is reaped at once. Neither touches the served model.
    """
    _signal_group(job, signal.SIGTERM)
    if not _wait_for_exit(job, grace_s):
        _signal_group(job, signal.SIGKILL)
        _wait_for_exit(job, grace_s)
    events = read_progress(Path(job.progress_file))
    if not events or events[-1]["event"] not in FINAL_EVENTS:  # it was stopped before it could say so itself
        ProgressWriter(Path(job.progress_file)).emit("failed", error=CANCELLED)
    return job.status()


def _signal_group(job: Job, signum: int) -> None:
    """The signal to the job's process group (the job and whatever it started), or to the job alone when it leads
    no group; nothing once its PID no longer names the job's process."""
    if not process_alive(job.pid, job.pid_started):
        return
    try:
        os.killpg(job.pid, signum)
    except ProcessLookupError:
        try:
            os.kill(job.pid, signum)
        except ProcessLookupError:
            pass
    except PermissionError:
        pass


def _wait_for_exit(job: Job, timeout_s: float) -> bool:
    """Whether the job's process ended within the timeout (reaped if this process started it)."""
    with _CHILDREN_LOCK:
        child = next((c for c in _CHILDREN if c.pid == job.pid), None)
    if child is not None:
        try:
            child.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        reap_finished()
        return True
    deadline = time.monotonic() + timeout_s
    while process_alive(job.pid, job.pid_started):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
