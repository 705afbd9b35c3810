"""One training job at a time: the start lock, liveness by PID and start time, reaping, and the progress states."""

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pneumo_core.jobs.launcher import JobError, current_job, reap_finished, start_job
from pneumo_core.jobs.progress import job_status, process_alive, process_start


@pytest.fixture
def sleeper_script(tmp_path):
    """Stands in for train.py: ignores its flags and sleeps (no progress events at all)."""
    script = tmp_path / "sleeper.py"
    script.write_text("import time\ntime.sleep(30)\n")
    return script


def test_concurrent_starts_launch_exactly_one_job(tmp_path, sleeper_script):
    def attempt(_):
        try:
            return start_job([], root=tmp_path / "runs", script=sleeper_script)
        except JobError as error:
            return error

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(attempt, range(6)))
    jobs = [o for o in outcomes if not isinstance(o, JobError)]
    try:
        assert len(jobs) == 1, outcomes
        assert all("already running" in str(o) or "being started" in str(o) for o in outcomes if isinstance(o, JobError))
        job = current_job(tmp_path / "runs")
        assert job == jobs[0] and job.status().state == "running"  # before train.py's first event: starting
        with pytest.raises(JobError, match="already running"):
            start_job([], root=tmp_path / "runs", script=sleeper_script)
    finally:
        for job in jobs:
            os.kill(job.pid, 9)


def test_a_finished_job_is_reaped_and_reads_failed_without_progress(tmp_path):
    quick = tmp_path / "quick.py"
    quick.write_text("pass\n")
    job = start_job([], root=tmp_path / "runs", script=quick)
    deadline = time.time() + 30
    while time.time() < deadline and process_alive(job.pid):
        reap_finished()
        time.sleep(0.1)
    reap_finished()
    assert not os.path.exists(f"/proc/{job.pid}")  # reaped: no zombie left under this process
    status = job.status()
    assert status.state == "failed" and "before reporting progress" in status.last["error"]


def test_a_reused_pid_does_not_look_like_the_job(tmp_path):
    """A live process with the run's PID but another start time is not the run."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = process_start(other.pid)
        assert process_alive(other.pid, started) and not process_alive(other.pid, started - 1)
        progress = tmp_path / "progress.jsonl"
        progress.write_text(json.dumps({"event": "start", "time": 0, "pid": other.pid, "pid_started": started - 1}) + "\n")
        assert job_status(progress).state == "failed"
    finally:
        other.kill()
        other.wait()


def test_the_status_line_says_what_the_run_does_from_its_first_second():
    from pneumo_core.jobs.progress import JobStatus, describe

    t0 = 1000.0
    start = {"event": "start", "time": t0}
    assert describe(JobStatus("running", [{"event": "starting", "time": t0}]), t0 + 3).startswith("starting")
    loading = JobStatus("running", [start, {"event": "phase", "phase": "loading", "films": 5216, "time": t0 + 5}])
    assert describe(loading, t0 + 20) == "loading 5,216 films into memory · 0 min 20 s elapsed"
    compiling = JobStatus("running", [start, {"event": "phase", "phase": "scratch_128px", "time": t0 + 30}])
    assert "compiling" in describe(compiling, t0 + 60)
    step = {"event": "step", "phase": "scratch_128px", "epoch": 3, "epochs": 12, "step": 40, "steps": 117, "eta_s": 600}
    assert describe(JobStatus("running", [start, step]), t0 + 125) == (
        "training from scratch at 128 px · epoch 3/12 · step 40/117 · about 10 min left in this phase · 2 min 05 s elapsed"
    )
    assert describe(JobStatus("cancelled", [start, {"event": "failed", "error": "cancelled"}]), t0) == "cancelled"
    # the clock counts whole minutes from the job's start, and only forward (it read "1 min 32 s" at 32 s)
    clock = [describe(loading, t0 + s).rsplit("· ", 1)[1] for s in (32, 52, 64, 119, 120)]
    assert clock == ["0 min 32 s elapsed", "0 min 52 s elapsed", "1 min 04 s elapsed", "1 min 59 s elapsed", "2 min 00 s elapsed"]


def test_the_log_shown_leaves_out_library_noise():
    from pneumo_core.jobs.progress import readable_log

    log = "\n".join(
        [
            "I0000 00:00:1796014376.460438    2609 port.cc:153] oneDNN custom operations are on.",
            "2026-11-30 04:53:31 INFO pneumo_core.training.trainer: decoded 5216 images in 14.2 s",
            "/site-packages/keras/src/trainers/epoch_iterator.py:74: UserWarning: `shuffle=True` was passed",
            "  self.data_adapter = data_adapters.get_data_adapter(",
            "Downloading data from https://storage.googleapis.com/tensorflow/keras-applications/densenet/x.h5",
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
            "2026-11-30 04:53:40 WARNING pneumo_core.modeling.architectures: "
            "NO PRETRAINED WEIGHTS: ImageNet weights could not be downloaded",
        ]
    )
    assert readable_log(log).splitlines() == [
        "2026-11-30 04:53:31 INFO pneumo_core.training.trainer: decoded 5216 images in 14.2 s",
        "2026-11-30 04:53:40 WARNING pneumo_core.modeling.architectures: "
        "NO PRETRAINED WEIGHTS: ImageNet weights could not be downloaded",
    ]


def test_reaping_from_many_sessions_at_once_loses_no_child_and_raises_nothing():
    """Streamlit sessions are threads of one process: they reap the shared list of children concurrently."""
    from pneumo_core.jobs import launcher

    children = [subprocess.Popen([sys.executable, "-c", "pass"]) for _ in range(8)]
    for child in children:
        child.wait()
    launcher._CHILDREN.extend(children)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: launcher.reap_finished(), range(64)))  # raises if two threads remove one child
    assert not any(child in launcher._CHILDREN for child in children)


STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as TensorFlow compiling a graph: no Python handler runs for minutes
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(sys.argv[sys.argv.index("--progress-file") + 1] + ".child", "w").write(str(child.pid))
time.sleep(60)
"""


def test_cancel_stops_a_job_that_cannot_react_within_seconds_with_its_children_and_records_cancelled(tmp_path):
    from pneumo_core.jobs.launcher import cancel_job

    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN)
    job = start_job([], root=tmp_path / "runs", script=script)
    child_file = Path(job.progress_file + ".child")
    deadline = time.monotonic() + 30
    while not child_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(child_file.read_text())
    started = time.monotonic()
    status = cancel_job(job, grace_s=1.0)
    assert time.monotonic() - started < 5.0
    assert status.state == "cancelled" and current_job(tmp_path / "runs").status().state == "cancelled"
    assert not os.path.exists(f"/proc/{job.pid}")  # reaped at once: no zombie left
    deadline = time.monotonic() + 5
    while process_alive(grandchild) and time.monotonic() < deadline:  # killed with its group (its parent reaps it)
        time.sleep(0.05)
    assert not process_alive(grandchild)


def test_a_cancel_in_the_first_second_reads_cancelled_not_failed(tmp_path, sleeper_script):
    from pneumo_core.jobs.launcher import cancel_job

    job = start_job([], root=tmp_path / "runs", script=sleeper_script)
    status = cancel_job(job)  # before the process has written anything
    assert status.state == "cancelled" and not os.path.exists(f"/proc/{job.pid}")
    assert status.last == {**status.last, "event": "failed", "error": "cancelled"}


def test_the_start_is_described_step_by_step_with_its_time():
    from pneumo_core.jobs.progress import JobStatus, describe

    t0 = 1000.0
    start = {"event": "start", "time": t0}
    loading = JobStatus("running", [start, {"event": "loading", "done": 1200, "films": 5216, "time": t0 + 40}])
    assert describe(loading, t0 + 42) == "loading films into memory: 1,200 of 5,216 · 0 min 42 s elapsed"
    building = {"event": "building", "phase": "scratch_128px", "time": t0 + 60}
    assert describe(JobStatus("running", [start, building]), t0 + 65) == (
        "training from scratch at 128 px: building the model (0 min 05 s so far) · 1 min 05 s elapsed"
    )
    compiling = {**building, "event": "phase", "stage": "compiling the training graph, then the first step", "time": t0 + 70}
    assert "compiling the training graph, then the first step (2 min 10 s so far)" in describe(
        JobStatus("running", [start, compiling]), t0 + 200
    )


def test_a_cancelled_run_logs_no_error_and_a_failed_one_does(monkeypatch, caplog):
    """Cancel is asked for: the log says 'training cancelled', not 'ERROR ... training failed: cancelled'."""
    import logging
    from types import SimpleNamespace

    import train as train_py
    from pneumo_core.training import trainer

    emitted = []

    def fake_trainer(error: BaseException):
        class Fake:
            def __init__(self, config, resume=None):
                self.progress = SimpleNamespace(emit=lambda state, **fields: emitted.append((state, fields)))

            def run(self):
                raise error

        return Fake

    caplog.set_level(logging.INFO)
    monkeypatch.setattr(train_py.signal, "signal", lambda *args: None)  # this test process keeps its own handlers
    monkeypatch.setattr(trainer, "Trainer", fake_trainer(SystemExit(143)))
    assert train_py.main(["--smoke"]) == 143
    assert "training cancelled" in caplog.text and not [r for r in caplog.records if r.levelno >= logging.ERROR]
    caplog.clear()
    monkeypatch.setattr(trainer, "Trainer", fake_trainer(RuntimeError("out of memory")))
    assert train_py.main(["--smoke"]) == 1
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "training failed: RuntimeError: out of memory"
    ]
    assert [state for state, _ in emitted] == ["failed", "failed"]


def test_the_clock_runs_from_the_click_and_phases_read_as_words(tmp_path):
    import os
    import time
    from datetime import UTC, datetime, timedelta

    from pneumo_core.jobs.launcher import Job
    from pneumo_core.jobs.progress import describe, phase_words

    clicked = datetime.now(UTC) - timedelta(seconds=30)
    job = Job("run", os.getpid(), str(tmp_path), str(tmp_path / "progress.jsonl"), str(tmp_path / "log"), clicked.isoformat())
    line = describe(job.status(), time.time())  # Python and TensorFlow still loading: no event written yet
    assert line.startswith("starting") and line.endswith("0 min 30 s elapsed")
    (tmp_path / "progress.jsonl").write_text(json.dumps({"event": "start", "time": time.time(), "pid": os.getpid()}) + "\n")
    assert describe(job.status(), time.time()).endswith("0 min 30 s elapsed")  # the first event does not reset it
    assert phase_words("scratch_64px") == "training from scratch at 64 px" and phase_words("fine_tune").startswith("fine-tuning")
