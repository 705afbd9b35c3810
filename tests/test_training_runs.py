"""Training runs of their own on a handful of real images: the transfer path, cancellation, a killed run.

Apart from ``test_training.py`` (whose tests share one smoke run) so that a parallel test run can give them to
another worker."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pneumo_core.jobs.progress import job_status, read_progress
from pneumo_core.jobs.request import TrainConfig
from pneumo_core.store.model_dir import load_model_dir
from pneumo_core.training.trainer import run_training

from .conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_transfer_recipe_with_a_local_weights_file(real_data, tmp_path):
    from keras.applications import DenseNet121

    weights = tmp_path / "base.weights.h5"
    DenseNet121(include_top=False, weights=None, input_shape=(64, 64, 3)).save_weights(weights)
    config = TrainConfig(
        data_dir=str(real_data),
        base_weights=str(weights),
        output_dir=str(tmp_path),
        run_name="transfer",
        smoke=True,
        fine_tune_layers=0,
        acquisition_offset=True,  # the head trains on (features, offset) pairs
    )
    candidate = run_training(config)
    metadata = json.loads((candidate / "metadata.json").read_text())
    assert metadata["recipe"] == "transfer" and metadata["base_weights"] == "file:base.weights.h5"
    assert len(load_model_dir(candidate)[0].inputs) == 1  # the classifier alone
    phases = [e.get("phase") for e in read_progress(tmp_path / "transfer" / "progress.jsonl") if e["event"] == "phase"]
    assert phases == ["loading", "head", "evaluate"]


def test_cancelled_mid_epoch_run_is_marked_failed_and_leaves_no_model(real_data, tmp_path):
    progress = tmp_path / "progress.jsonl"
    command = [
        sys.executable,
        "train.py",
        "--smoke",
        "--base-weights",
        "none",
        "--data-dir",
        str(real_data),
        "--scratch-schedule",
        "64:3:4",
        "--architecture",
        "efficientnetv2b0",  # the quicker graph to build: the signal is what is tested
        "--gamma",
        "0.3",
        "--sharpness",
        "1",
        "--noise",
        "5",
        "--output-dir",
        str(tmp_path),
        "--run-name",
        "cancelled",
        "--progress-file",
        str(progress),
    ]
    with open(tmp_path / "train.log", "w") as log:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 400
    while time.time() < deadline and not any(e["event"] == "step" for e in read_progress(progress)):
        time.sleep(0.5)
    assert job_status(progress).state == "running"
    process.send_signal(signal.SIGTERM)  # mid-epoch: the training loop is between steps
    assert process.wait(timeout=120) == 143
    status = job_status(progress)
    assert status.state == "cancelled" and status.last["error"] == "cancelled"  # not reported as a failure
    assert not (tmp_path / "cancelled" / "model").exists()


def test_killed_run_is_reported_failed(tmp_path):
    progress = tmp_path / "progress.jsonl"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    progress.write_text(json.dumps({"event": "start", "time": 0, "pid": sleeper.pid}) + "\n")
    assert job_status(progress).state == "running"
    os.kill(sleeper.pid, signal.SIGKILL)
    sleeper.wait()
    status = job_status(progress)
    assert status.state == "failed" and "without finishing" in status.last["error"]
