"""The patient-grouped split of the training folder and its manifest.

The split is carved from ``train/`` only, grouped by patient so no patient's films sit on both sides (byte-identical
files share a group too), and written as a CSV manifest whose hash identifies the data a model saw.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold


def _file_sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _merge_duplicate_groups(frame: pd.DataFrame) -> pd.Series:
    """Patient groups, merged wherever two files are byte-identical (union-find over content hashes)."""
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for _, same_content in frame.groupby("sha256")["patient"]:
        first, *rest = same_content.tolist()
        for other in rest:
            parent[find(other)] = find(first)
    return frame["patient"].map(find)


def split_by_patient(
    frame: pd.DataFrame, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 42
) -> pd.DataFrame:
    """Add a ``split`` column (train/val/test), stratified by label and grouped by patient.

    Byte-identical files are put in the same group too, so a duplicate can never
    leak across splits. Uses scikit-learn's ``StratifiedGroupKFold`` twice:
    first to hold out the internal test split, then validation from the rest.
    """
    frame = frame.copy()
    frame["sha256"] = [_file_sha256(path) for path in frame["path"]]
    frame["group"] = _merge_duplicate_groups(frame)
    frame["split"] = "train"

    def hold_out(candidates: pd.DataFrame, fraction: float, name: str) -> None:
        folds = StratifiedGroupKFold(n_splits=max(2, round(1 / fraction)), shuffle=True, random_state=seed)
        _, held = next(folds.split(candidates, candidates["label"], candidates["group"]))
        frame.loc[candidates.index[held], "split"] = name

    hold_out(frame, test_fraction, "test")
    hold_out(frame[frame["split"] == "train"], val_fraction / (1 - test_fraction), "val")
    return frame


MANIFEST_COLUMNS = ["file", "label", "patient", "group", "split", "sha256"]


def manifest_hash(manifest: pd.DataFrame) -> str:
    """A short SHA-256 of the manifest's content: same files, labels and split → same hash."""
    text = manifest[MANIFEST_COLUMNS].sort_values("file").to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_manifest(manifest: pd.DataFrame, path: Path) -> None:
    manifest[MANIFEST_COLUMNS].to_csv(path, index=False)
