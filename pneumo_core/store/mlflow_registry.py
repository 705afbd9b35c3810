"""The MLflow Model Registry side of serving: versions, the aliases that say which one serves, and serving changes.

Every finished training run registers its model directory as a new version of :data:`REGISTERED_MODEL`
(with the run, the data manifest hash, the metrics and the model card). Which version serves is said by
aliases: ``champion`` (served), ``previous`` (the one it replaced, for roll-back) and ``challenger`` (a
candidate). :func:`move_serving_aliases` moves them when
``models/served/`` changes, so the folder (the embedded default a fresh clone serves without any store) and the
registry stay in step. Kept apart from :mod:`pneumo_core.training.tracking` (which imports Keras for its callback) so the
app and the CLI can do this without loading TensorFlow. A store problem never undoes a serving change: it is
logged and reported as not recorded.
"""

from __future__ import annotations

import logging
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pneumo_core.config import REGISTERED_MODEL, REGISTRY_URI, locations, serving_settings

log = logging.getLogger(__name__)

CHAMPION, PREVIOUS, CHALLENGER = "champion", "previous", "challenger"


def _client():
    import mlflow

    return mlflow.MlflowClient(locations().mlflow_tracking_uri)


def register_version(run_id: str, artifact_uri: str, metadata: dict[str, Any], card: str) -> str:
    """A new version of :data:`REGISTERED_MODEL` from a run's logged model directory; returns its number."""
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        client.get_registered_model(REGISTERED_MODEL)
    except MlflowException:
        client.create_registered_model(REGISTERED_MODEL, description="Pneumonia on pediatric chest X-rays (research demo)")
    metrics = metadata.get("metrics", {})
    tags = {
        "model_name": str(metadata.get("name")),
        "model_sha256": str(metadata.get("model_sha256")),
        "data_manifest_sha256": str(metadata.get("data_manifest_sha256")),
        **{f"{split}_{key}": f"{metrics[split][key]:.4f}" for split in metrics for key in ("roc_auc", "accuracy")},
    }
    version = client.create_model_version(REGISTERED_MODEL, artifact_uri, run_id=run_id, tags=tags, description=card)
    return str(version.version)


def alias_version(alias: str) -> str | None:
    """The version an alias points to, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return str(_client().get_model_version_by_alias(REGISTERED_MODEL, alias).version)
    except MlflowException:
        return None


def download_version(version: str, destination: Path) -> Path:
    """A registered version's model directory, downloaded to exactly ``destination`` (replaced if present)."""
    import mlflow

    mlflow.set_tracking_uri(locations().mlflow_tracking_uri)
    source = _client().get_model_version(REGISTERED_MODEL, str(version)).source
    destination = Path(destination)
    staging = destination.with_name(destination.name + ".download")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    downloaded = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(staging)))
    shutil.rmtree(destination, ignore_errors=True)
    os.replace(downloaded, destination)  # the artifacts land in a folder named after the source's last part
    shutil.rmtree(staging, ignore_errors=True)
    return destination


def version_directory(version: str) -> Path:
    """Where a registered version is kept once downloaded: ``runs/registry/version-N``."""
    return locations().runs_dir / "registry" / f"version-{version}"


def resolve_model_uri(uri: str) -> Path:
    """The model directory of ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``, downloaded once per version
    (its files' SHA-256 are checked when it loads, as for any model directory)."""
    from pneumo_core.store.model_dir import ModelLoadError, record_in_metadata

    parts = REGISTRY_URI.fullmatch(uri)
    if not parts:
        raise ValueError(f"{uri!r} is not a registry URI: use models:/NAME@ALIAS or models:/NAME/VERSION.")
    name, reference, version = parts["name"], parts["alias"], parts["version"]
    if name != REGISTERED_MODEL:
        raise ValueError(f"This project registers {REGISTERED_MODEL!r}, not {name!r}.")
    try:
        version = str(_client().get_model_version_by_alias(name, reference).version) if reference else version
        directory = version_directory(version)
        if not (directory / "metadata.json").is_file():
            download_version(version, directory)
            record_in_metadata(directory, registry_version=version)
    except Exception as error:  # noqa: BLE001 - MLflow raises many kinds: say which model and why, once
        raise ModelLoadError(f"{uri} could not be fetched from the registry: {str(error).splitlines()[0]}") from None
    return directory


def serving_directory() -> Path:
    """What the app, the API and the CLI serve: the registry version ``$PNEUMO_MODEL_URI`` names, if set, else the
    served model directory."""
    uri = serving_settings().model_uri
    return resolve_model_uri(uri) if uri else locations().model_dir


def _set_aliases(champion: str | None, previous: str | None) -> bool:
    try:
        client = _client()
        if champion:
            client.set_registered_model_alias(REGISTERED_MODEL, CHAMPION, champion)
        if previous and previous != champion:
            client.set_registered_model_alias(REGISTERED_MODEL, PREVIOUS, previous)
        if alias_version(CHALLENGER) == champion:
            client.delete_registered_model_alias(REGISTERED_MODEL, CHALLENGER)  # a served challenger has won
    except Exception as error:  # noqa: BLE001 - a store problem must not undo a serving change that happened
        log.warning("the registry's aliases were not moved: %s", str(error).splitlines()[0])
        return False
    return True


def set_challenger(version: str | None) -> None:
    """Name a registered version the ``challenger`` (``None``: no challenger); errors say what the store said."""
    client = _client()
    if version is None:
        if alias_version(CHALLENGER) is not None:
            client.delete_registered_model_alias(REGISTERED_MODEL, CHALLENGER)
        return
    client.get_model_version(REGISTERED_MODEL, str(version))  # raises when there is no such version
    client.set_registered_model_alias(REGISTERED_MODEL, CHALLENGER, str(version))


def move_serving_aliases(served: dict[str, Any], other: dict[str, Any] | None) -> bool:
    """After a promotion or a roll-back: ``champion`` → the version now in ``models/served``, ``previous`` → the one
    beside it (``models/served.previous``). False, and nothing moved, when the served model has no version here."""
    version = served.get("registry_version")
    if not version:
        return False
    previous = other.get("registry_version") if other else None
    return _set_aliases(str(version), str(previous) if previous else None)


def tag_serving_change(metadata: dict[str, Any], event: str, actor: str) -> bool:
    """Tag the model's training run with ``pneumo.<event>_at`` / ``pneumo.<event>_by`` (event: promoted or
    rolled_back_to). Returns False, logging why, when the model has no run in this MLflow store."""
    run_id = metadata.get("mlflow_run_id")
    if not run_id:
        return False
    try:
        client = _client()
        client.set_tag(run_id, f"pneumo.{event}_at", datetime.now(UTC).isoformat(timespec="seconds"))
        client.set_tag(run_id, f"pneumo.{event}_by", actor)
    except Exception as error:  # noqa: BLE001 - a store problem must not undo a promotion that happened
        log.warning("MLflow could not record the %s of run %s: %s", event, run_id, str(error).splitlines()[0])
        return False
    return True
