"""What MLflow records about serving: which run's model was promoted or rolled back, when, and by whom.

Kept apart from :mod:`pneumo_core.tracking` (which imports Keras for its callback) so the app
and the CLI can record a promotion without loading TensorFlow.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from .config import mlflow_tracking_uri

log = logging.getLogger(__name__)


def tag_serving_change(metadata: dict[str, Any], event: str, actor: str) -> bool:
    """Tag the model's training run with ``pneumo.<event>_at`` / ``pneumo.<event>_by`` (event: promoted or
    rolled_back_to). Returns False, logging why, when the model has no run in this MLflow store."""
    run_id = metadata.get("mlflow_run_id")
    if not run_id:
        return False
    try:
        import mlflow

        client = mlflow.MlflowClient(mlflow_tracking_uri())
        client.set_tag(run_id, f"pneumo.{event}_at", datetime.now(UTC).isoformat(timespec="seconds"))
        client.set_tag(run_id, f"pneumo.{event}_by", actor)
    except Exception as error:  # noqa: BLE001 - a store problem must not undo a promotion that happened
        log.warning("MLflow could not record the %s of run %s: %s", event, run_id, str(error).splitlines()[0])
        return False
    return True
