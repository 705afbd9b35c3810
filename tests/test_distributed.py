"""Training on a cluster: two train.py processes on loopback, joined by TF_CONFIG, train one model together."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from pneumo_core.modeling.architectures import build_classifier
from pneumo_core.training.cluster import ClusterRole, cluster_role

from .conftest import PROJECT_ROOT


def _cluster(ports: list[int], index: int, kind: str = "worker") -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]}, "task": {"type": kind, "index": index}})


def test_the_cluster_role_comes_from_tf_config():
    assert cluster_role("") == ClusterRole(1, 0) and cluster_role("").is_chief
    assert cluster_role(_cluster([1, 2], 1)) == ClusterRole(2, 1)
    with_chief = json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 0}})
    assert cluster_role(with_chief) == ClusterRole(2, 1)  # the chief task, not worker 0, keeps the books
    for broken in ("not json", _cluster([1, 2], 5), json.dumps({"cluster": {}})):
        with pytest.raises(ValueError, match="TF_CONFIG must be JSON"):
            cluster_role(broken)


@pytest.mark.slow
def test_two_workers_on_loopback_train_one_model(real_data, tmp_path):
    """Each worker is given a different --seed, so they draw different films in a different order and would start
    from different weights: only synchronised training (the chief's initial weights, every step's gradients
    averaged over both workers) leaves them with one model."""
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    workers = []
    for index in range(2):
        command = [
            sys.executable, "train.py", "--smoke", "--base-weights", "none", "--no-augment", "--data-dir", str(real_data),
            "--output-dir", str(tmp_path), "--run-name", "cluster", "--seed", str(42 + index),
            "--architecture", "efficientnetv2b0",
        ]  # fmt: skip
        environment = {**os.environ, "TF_CONFIG": _cluster(ports, index), "PNEUMO_TRAIN_MEMORY_MB": "1000"}
        workers.append(
            subprocess.Popen(command, cwd=PROJECT_ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        )
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (_, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr.decode()[-3000:]
    chief, other = (json.loads(stdout.decode().strip().splitlines()[-1]) for stdout, _ in outputs)
    assert "model_dir" in chief and other == {"worker": 1, "run_dir": str(tmp_path / "cluster" / "worker-1")}
    assert (tmp_path / "cluster" / "model" / "metadata.json").is_file()
    assert not (tmp_path / "cluster" / "worker-1" / "model").exists()  # the chief keeps the model and the books

    start = json.loads((tmp_path / "cluster" / "progress.jsonl").read_text().splitlines()[0])
    assert start["event"] == "start" and start["workers"] == 2
    trained = []
    for folder in (tmp_path / "cluster", tmp_path / "cluster" / "worker-1"):
        model = build_classifier(64, None, head_units=8, architecture="efficientnetv2b0")
        model.load_weights(folder / "scratch_64px.weights.h5")
        trained.append(model)
    pairs = list(zip(trained[0].trainable_weights, trained[1].trainable_weights))
    assert len(pairs) > 200 and all(np.array_equal(a.numpy(), b.numpy()) for a, b in pairs)  # one model
    # Batch-norm statistics are each worker's own (MultiWorkerMirroredStrategy does not sync them): theirs differ,
    # so the workers did see different films.
    statistics = zip(trained[0].non_trainable_weights, trained[1].non_trainable_weights)
    assert not any(np.array_equal(a.numpy(), b.numpy()) for a, b in statistics)
