"""Which member of a training cluster this process is, read from ``TF_CONFIG`` (TensorFlow's own convention).

``TF_CONFIG`` is JSON: ``{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}``
(a ``"chief"`` list is allowed too). Every listed process runs the same ``train.py`` command; the chief (a
``"chief"`` task, else worker 0) keeps the run's books: progress, MLflow, the candidate model and its registration.
No TensorFlow here, so the Training page and ``train.py --help`` can read it cheaply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pneumo_core.config import TrainingSettings, training_settings

TRAINING_TASKS = ("chief", "worker")


@dataclass(frozen=True)
class ClusterRole:
    workers: int
    """Processes training the one model together (1: no cluster)."""
    index: int
    """This process's place among them; 0 is the chief."""

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    @property
    def distributed(self) -> bool:
        return self.workers > 1


def cluster_role(spec: str | None = None) -> ClusterRole:
    """This process's role from ``spec`` (default ``$TF_CONFIG``); one process alone when there is none."""
    spec = training_settings().cluster if spec is None else spec
    if not spec:
        return ClusterRole(1, 0)
    try:
        config = json.loads(spec)
        cluster, task = config.get("cluster", {}), config["task"]
        members = [(kind, index) for kind in TRAINING_TASKS for index in range(len(cluster.get(kind, [])))]
        position = members.index((task["type"], int(task.get("index", 0))))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ValueError(
            f"${TrainingSettings.variable('cluster')} must be JSON naming a cluster and this process's task in it, e.g. "
            '{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]}, "task": {"type": "worker", "index": 0}}'
        ) from None
    return ClusterRole(len(members), position)
