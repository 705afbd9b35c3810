"""The Kermany data set on disk: listing, patient ids, the patient-grouped split, the manifest.

A data folder holds ``NORMAL/`` and ``PNEUMONIA/`` class folders, either
directly or under ``train/`` (and optionally ``val/``, ``test/``). The split is
carved from ``train/`` only, grouped by patient so no patient's films sit on
both sides, and written as a CSV manifest whose hash identifies the data a
model saw.
"""

from __future__ import annotations

import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from . import CLASS_NAMES
from .decode import IMAGE_SUFFIXES, decode_image
from .preprocess import CANONICAL_SIZE, canonicalize

SPLITS = ("train", "val", "test")

# person1000_bacteria_2931.jpeg -> person1000; NORMAL2-IM-0383-0001.jpeg -> NORMAL2-IM-0383;
# IM-0115-0001.jpeg -> IM-0115. Anything else is its own patient.
_PATIENT_PATTERNS = (re.compile(r"^(person\d+)_"), re.compile(r"^((?:NORMAL\d*-)?IM-\d+)-"))


def patient_id(file_name: str) -> str:
    """The patient id encoded in a Kermany file name (the file stem when there is none)."""
    for pattern in _PATIENT_PATTERNS:
        match = pattern.match(file_name)
        if match:
            return match.group(1)
    return Path(file_name).stem


def class_root(data_dir: Path, split: str = "train") -> Path:
    """The folder holding the class folders: ``data_dir/split`` if it exists, else ``data_dir``."""
    nested = Path(data_dir) / split
    return nested if (nested / CLASS_NAMES[0]).is_dir() or (nested / CLASS_NAMES[1]).is_dir() else Path(data_dir)


def labelled_folders(roots: list[Path], depth: int = 2) -> list[Path]:
    """Folders at most ``depth`` levels under ``roots`` (roots included) that hold ``NORMAL/`` or ``PNEUMONIA/``."""
    found: list[Path] = []
    frontier = [Path(root) for root in roots]
    for _ in range(depth + 1):
        found += [f for f in frontier if any((f / name).is_dir() for name in CLASS_NAMES)]
        frontier = [child for f in frontier for child in sorted(f.iterdir()) if child.is_dir() and child.name not in CLASS_NAMES]
    return sorted(set(found))


def list_labelled_images(root: Path) -> pd.DataFrame:
    """Every image under ``root/NORMAL`` and ``root/PNEUMONIA`` (recursive), sorted by path.

    Columns: ``path`` (absolute), ``file`` (relative to ``root``), ``label`` (0/1), ``patient``.
    """
    root = Path(root)
    rows = []
    for label, class_name in enumerate(CLASS_NAMES):
        for path in sorted((root / class_name).rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                rows.append(
                    {"path": str(path), "file": str(path.relative_to(root)), "label": label, "patient": patient_id(path.name)}
                )
    if not rows:
        raise FileNotFoundError(f"No images under {root}/NORMAL or {root}/PNEUMONIA.")
    return pd.DataFrame(rows).sort_values("file", ignore_index=True)


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


def load_canonical(path: str) -> np.ndarray:
    """One file → its ``(224, 224)`` uint8 canonical image."""
    return canonicalize(decode_image(Path(path).read_bytes()))


def load_canonical_images(paths: list[str], workers: int = 4) -> np.ndarray:
    """Decode and canonicalize files in parallel → ``(N, 224, 224)`` uint8, in the given order."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.stack(list(pool.map(load_canonical, paths)))


def decoded_bytes(count: int) -> int:
    """Memory that ``count`` canonical images take once decoded."""
    return count * CANONICAL_SIZE * CANONICAL_SIZE
