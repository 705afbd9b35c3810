"""Score a labelled folder through the serving path, in batches, keeping only what a result needs.

:func:`score_labelled_folder` reads ``NORMAL/`` and ``PNEUMONIA/`` (or ``test/`` holding
them) batch by batch through :meth:`Predictor.classify` (which decodes the next batch
while the current one runs), and keeps per film only its name, label, logit and feature
distance, so memory does not grow with the folder. It also hashes every file's bytes
into one digest identifying the data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pneumo_core.common.films import class_root, list_labelled_images
from pneumo_core.serving.predictor import Predictor
from pneumo_core.store.model_dir import EVALUATION_DIR


@dataclass(frozen=True)
class FolderScores:
    """Per-film results for a labelled folder (readable films only; ``errors`` holds the others)."""

    files: list[str]  # relative to the class root, e.g. NORMAL/IM-0001-0001.jpeg
    labels: np.ndarray  # 0 NORMAL, 1 PNEUMONIA
    logits: np.ndarray  # raw model logits (float32), before any temperature
    distances: np.ndarray  # feature distance to the training reference (NaN without one)
    warned: np.ndarray  # bool: the film got a not-an-X-ray warning
    withheld: np.ndarray  # bool: the film got no verdict (clearly not a chest X-ray), as predict answers it
    errors: dict[str, str]  # file → reason, for films that could not be read
    data_sha256: str  # over every file's relative name, label and bytes (sorted by name)

    def __len__(self) -> int:
        return len(self.files)


def score_labelled_folder(
    predictor: Predictor, data_dir: Path, progress: Callable[[int, int], None] | None = None
) -> FolderScores:
    """Score every image under ``data_dir`` (see the module docstring); ``progress(done, total)`` after each batch."""
    return score_films(predictor, labelled_folder_films(data_dir), progress)


def labelled_folder_films(data_dir: Path) -> pd.DataFrame:
    """A labelled folder's films (``NORMAL/`` and ``PNEUMONIA/``, or ``test/`` holding them) as ``path``, ``file``,
    ``label`` rows."""
    return list_labelled_images(class_root(Path(data_dir), "test"))[["path", "file", "label"]]


def internal_test_films(model_dir: Path, data_dir: Path) -> pd.DataFrame:
    """A model's internal-test films (its manifest's ``test`` split, under ``data_dir``'s training split) as
    ``path``, ``file``, ``label`` rows."""
    return manifest_films(model_dir, data_dir, "test")


def manifest_films(model_dir: Path, data_dir: Path, split: str) -> pd.DataFrame:
    """The films of one split (``train``, ``val`` or ``test``) of a model's manifest, under ``data_dir``'s training
    split, as ``path``, ``file``, ``label`` rows."""
    manifest = pd.read_csv(Path(model_dir) / EVALUATION_DIR / "manifest.csv")
    rows = manifest[manifest["split"] == split]
    root = class_root(Path(data_dir), "train")
    return pd.DataFrame({"path": [str(root / name) for name in rows["file"]], "file": rows["file"], "label": rows["label"]})


def score_films(predictor: Predictor, films: pd.DataFrame, progress: Callable[[int, int], None] | None = None) -> FolderScores:
    """Score labelled films given as rows of ``path``, ``file`` (the name kept) and ``label``, in batches."""
    digest = hashlib.sha256()
    files, labels, logits, distances, warned, withheld, errors = [], [], [], [], [], [], {}
    rows = list(films[["path", "file", "label"]].itertuples(index=False))
    for start in range(0, len(rows), predictor.batch_size):
        chunk = rows[start : start + predictor.batch_size]
        payloads = []
        for row in chunk:
            payload = Path(row.path).read_bytes()
            digest.update(f"{row.file}\0{row.label}\0{hashlib.sha256(payload).hexdigest()}\n".encode())
            payloads.append((row.file, payload))
        for row, case in zip(chunk, predictor.classify(payloads)):
            if case.error:
                errors[row.file] = case.error
                continue
            files.append(row.file)
            labels.append(int(row.label))
            logits.append(case.prediction.logit)
            distances.append(np.nan if case.distance is None else case.distance)
            warned.append(bool(case.warnings))
            withheld.append(case.withheld is not None)
        if progress:
            progress(min(start + len(chunk), len(rows)), len(rows))
    return FolderScores(
        files,
        np.asarray(labels, dtype=int),
        np.asarray(logits, dtype=np.float32),
        np.asarray(distances, dtype=float),
        np.asarray(warned, dtype=bool),
        np.asarray(withheld, dtype=bool),
        errors,
        digest.hexdigest(),
    )
