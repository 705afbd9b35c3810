"""A site's labelled sample as calibration reads it: scored films, or score records of films it cannot share, with
each film's patient.

Patients come from a manifest (a CSV ``file,patient``, matched on the file as given or its base name), else from a
record's ``patient`` field, else from the file name (the Kermany pattern, :func:`~pneumo_core.common.films.patient_id`).
When that finds no structure (every film its own patient) the sample says so in its notes: intervals and the
simulation then treat films as independent children.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from pneumo_core import CLASS_NAMES
from pneumo_core.common.films import patient_id
from pneumo_core.operating_point.calibration import LabelledSample
from pneumo_core.store.profiles import ProfileError

NO_STRUCTURE = (
    "No patient structure found: every film counts as its own patient. If a child has several films, give a "
    'manifest (--patients file,patient) or a "patient" field: intervals and the simulation are by patient.'
)


def read_manifest(path: Path) -> dict[str, str]:
    """``file → patient`` from a CSV with the columns ``file`` and ``patient``."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ProfileError(f"The patient manifest {path} cannot be read ({error}).") from None
    if not rows or not {"file", "patient"} <= set(rows[0]):
        raise ProfileError(f"The patient manifest {path} needs the columns file,patient.")
    return {row["file"]: row["patient"] for row in rows if row.get("file") and row.get("patient")}


def patients_of(files: list[str], given: list[str | None] | None = None, manifest: dict[str, str] | None = None) -> np.ndarray:
    """Each film's patient: the manifest's (by the file as given, then its base name), the record's, or the name's."""
    given = given or [None] * len(files)
    manifest = manifest or {}
    result = []
    for file, patient in zip(files, given):
        name = Path(file).name
        result.append(manifest.get(file) or manifest.get(name) or patient or patient_id(name))
    return np.asarray(result, dtype=object)


def _notes(patients: np.ndarray) -> list[str]:
    return [NO_STRUCTURE] if len(patients) and len(np.unique(patients)) == len(patients) else []


def sample_from_folder(scores, manifest: dict[str, str] | None = None) -> LabelledSample:
    """The films of a scored folder (:class:`~pneumo_core.evaluation.scoring.FolderScores`) that got a verdict."""
    kept = ~scores.withheld
    patients = patients_of(list(scores.files), manifest=manifest)[kept]
    return LabelledSample(
        labels=scores.labels[kept].astype(int),
        logits=scores.logits[kept].astype(float),
        patients=patients,
        data_sha256=scores.data_sha256,
        distances=scores.distances[kept],
        warned=scores.warned[kept],
        withheld=int(scores.withheld.sum()),
        unreadable=len(scores.errors),
        notes=_notes(patients),
    )


def sample_from_records(lines: list[str], manifest: dict[str, str] | None = None) -> LabelledSample:
    """Score records, one JSON object a line: ``logit``, ``truth`` (NORMAL or PNEUMONIA), optionally ``patient`` and
    ``file``. A record of ``predict`` without a verdict (``"label": null``: withheld as not an X-ray) is counted as
    withheld and one with an ``error`` as unreadable; any other record without a finite logit or a truth is refused
    with its line number."""
    files, labels, logits, given = [], [], [], []
    withheld = unreadable = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record: Any = json.loads(line)
        except json.JSONDecodeError as error:
            raise ProfileError(f"Line {number} of the scores is not JSON ({error.msg}).") from None
        if not isinstance(record, dict):
            raise ProfileError(f"Line {number} of the scores is not a JSON object.")
        if "error" in record and record.get("logit") is None:
            unreadable += 1
            continue
        if record.get("logit") is None and "label" in record and record["label"] is None:
            withheld += 1
            continue
        logit, truth = record.get("logit"), record.get("truth")
        if isinstance(logit, bool) or not isinstance(logit, int | float) or not math.isfinite(logit):
            raise ProfileError(f'Line {number} of the scores has no finite "logit" (the model\'s raw logit).')
        if truth not in CLASS_NAMES:
            raise ProfileError(f'Line {number} of the scores needs "truth": "NORMAL" or "PNEUMONIA" (got {truth!r}).')
        files.append(str(record.get("file") or f"line-{number}"))
        labels.append(CLASS_NAMES.index(truth))
        logits.append(float(logit))
        given.append(str(record["patient"]) if record.get("patient") not in (None, "") else None)
    if not files:
        raise ProfileError("The scores hold no record with a logit and a truth.")
    patients = patients_of(files, given, manifest)
    digest = hashlib.sha256("\n".join(line.strip() for line in lines if line.strip()).encode()).hexdigest()
    return LabelledSample(
        labels=np.asarray(labels),
        logits=np.asarray(logits),
        patients=patients,
        data_sha256=digest,
        withheld=withheld,
        unreadable=unreadable,
        source="scores",
        notes=_notes(patients),
    )
