"""How labelled films are laid out on disk: class folders, image suffixes and the patient id in a file name.

A data folder holds ``NORMAL/`` and ``PNEUMONIA/`` class folders, either directly or under ``train/`` (and
optionally ``val/``, ``test/``). Kermany file names carry a patient id, which every split and every patient-level
interval groups by. NumPy-free and pandas-free at import: pandas is imported only by :func:`list_labelled_images`,
whose callers want a table.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from pneumo_core import CLASS_NAMES

if TYPE_CHECKING:
    import pandas as pd

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".tif", ".tiff", ".dcm"}
"""The file names a folder is searched for (a file given by name is decoded whatever its name)."""

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
    import pandas as pd

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
