"""A change of the served model, done one way by ``train.py --promote``, the CLI and the Training page.

Each swaps ``models/served/`` atomically (:mod:`pneumo_core.store.model_dir`), tags the model's MLflow run, moves the
registry's ``champion`` / ``previous`` aliases (:mod:`pneumo_core.store.mlflow_registry`) and records the action in the
operator-action log. The folder is what serves; the store records it, and a store problem never undoes a change.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pneumo_core.config import locations
from pneumo_core.operations.audit import record_action
from pneumo_core.store.mlflow_registry import download_version, move_serving_aliases, tag_serving_change, version_directory
from pneumo_core.store.model_dir import ModelLoadError, previous_dir, promote, read_metadata, record_in_metadata, roll_back


def _metadata_or_none(directory: Path) -> dict[str, Any] | None:
    return read_metadata(directory) if (directory / "metadata.json").is_file() else None


def _name(metadata: dict[str, Any] | None, directory: Path) -> str:
    return str((metadata or {}).get("name", directory.name))


def promote_candidate(candidate: Path, actor: str, served: Path | None = None) -> dict[str, Any]:
    """Serve ``candidate`` (the old model is kept for roll-back); returns the audit record."""
    served = Path(served or locations().model_dir)
    replaced = _metadata_or_none(served)
    promote(Path(candidate), served)
    return _recorded("promote", "promoted", actor, served, replaced)


def roll_back_served(actor: str, served: Path | None = None) -> dict[str, Any]:
    """Serve the model the current one replaced (and keep the current one as the previous)."""
    served = Path(served or locations().model_dir)
    replaced = _metadata_or_none(served)
    roll_back(served)
    return _recorded("roll back", "rolled_back_to", actor, served, replaced)


def _recorded(action: str, event: str, actor: str, served: Path, replaced: dict[str, Any] | None) -> dict[str, Any]:
    """Tag the run, move the aliases and audit a change that has happened."""
    metadata = read_metadata(served)
    tagged = tag_serving_change(metadata, event, actor)
    aliased = move_serving_aliases(metadata, _metadata_or_none(previous_dir(served)))
    return record_action(
        action,
        _name(metadata, served),
        "served",
        actor,
        replaced=_name(replaced, served) if replaced else None,
        registry_version=metadata.get("registry_version"),
        mlflow_tagged=tagged,
        registry_aliases_moved=aliased,
    )


def promote_version(version: str, actor: str, served: Path | None = None) -> dict[str, Any]:
    """Download a registered version, check it loads (SHA-256 of its files), and serve it."""
    from pneumo_core.serving.predictor import Predictor

    staging = version_directory(version)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        directory = download_version(version, staging)
    except Exception as error:  # noqa: BLE001 - MLflow raises many kinds; the reason is shown
        reason = str(error).splitlines()[0]
        raise ModelLoadError(f"Version {version} could not be fetched from the registry: {reason}") from None
    record_in_metadata(directory, registry_version=str(version))
    Predictor.load(directory)  # refuses files whose SHA-256 differ from the metadata
    return promote_candidate(directory, actor, served)
