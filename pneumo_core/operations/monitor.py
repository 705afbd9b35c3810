"""Monitoring: one row per answered film in a local SQLite store, and drift of what comes in against validation.

Every entry point that answers films (the app's Classify page, the REST API) calls :func:`record`. A row holds
the time, where it was answered, the model (name and SHA-256), the operating point, the verdict (``NORMAL``,
``PNEUMONIA`` or ``withheld``), the calibrated probability and raw logit, the number of warnings, the feature
distance to the training films, two image statistics (mean and standard deviation of the canonical image) and
the latency. No image, file name, DICOM field or anything else identifying is stored. The store runs in WAL
mode, so a killed process loses at most its own last write and the app and the API can write at once; rows
older than the retention (``$PNEUMO_MONITOR_RETENTION_DAYS``) are deleted on every write.

**Drift** (:func:`drift_report`) compares a window's feature distances and logits with the served model's
validation films (the same population the threshold and the not-an-X-ray limit were set on), each by the
population stability index over ten validation-quantile bins and by the two-sample Kolmogorov-Smirnov test.
A signal alerts when PSI ≥ :data:`PSI_ALERT` (the usual "significant shift" rule of thumb) or the KS p-value
is below :data:`KS_ALPHA`, given at least :data:`MIN_ANSWERS` films; these are conventions, not values
tuned on any data set.
"""

from __future__ import annotations

import csv
import logging
import re
import sqlite3
import time
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pneumo_core.config import monitor_db_path, monitor_retention_days

log = logging.getLogger(__name__)

PSI_ALERT = 0.25
KS_ALPHA = 0.001
MIN_ANSWERS = 50
PSI_BINS = 10
SOURCES = ("app", "api")

COLUMNS = {
    "time": "REAL NOT NULL",
    "source": "TEXT NOT NULL",
    "model": "TEXT NOT NULL",
    "model_sha256": "TEXT NOT NULL",
    "operating_point": "TEXT NOT NULL",
    "verdict": "TEXT NOT NULL",
    "probability": "REAL",
    "logit": "REAL",
    "warnings": "INTEGER NOT NULL",
    "distance": "REAL",
    "image_mean": "REAL",
    "image_std": "REAL",
    "latency_ms": "REAL",
    "decision": "TEXT",
}
"""The store's ``answers`` table: column → SQLite type (``decision``: NORMAL, PNEUMONIA, REFER, or null when withheld;
last, so that a store written before it existed gains it as a new column)."""
SHADOW_COLUMNS = {
    "time": "REAL NOT NULL",
    "source": "TEXT NOT NULL",
    "champion_sha256": "TEXT NOT NULL",
    "challenger": "TEXT NOT NULL",
    "challenger_sha256": "TEXT NOT NULL",
    "champion_verdict": "TEXT NOT NULL",
    "challenger_verdict": "TEXT NOT NULL",
    "champion_probability": "REAL NOT NULL",
    "challenger_probability": "REAL NOT NULL",
    "champion_latency_ms": "REAL NOT NULL",
    "challenger_latency_ms": "REAL NOT NULL",
}
"""The ``shadow`` table (:mod:`pneumo_core.operations.shadow`): the challenger's answer beside the champion's, per film."""
TABLES = {"answers": COLUMNS, "shadow": SHADOW_COLUMNS}
SCHEMA = "".join(
    f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(f'{name} {kind}' for name, kind in columns.items())});"
    f"CREATE INDEX IF NOT EXISTS {table}_time ON {table} (time);"
    for table, columns in TABLES.items()
)
_READY: set[Path] = set()  # stores whose WAL mode and table this process has already set up


def connect(path: Path | None = None) -> sqlite3.Connection:
    """A connection to the store (created on first use), in WAL mode, waiting up to 5 s for another writer."""
    path = Path(path) if path else monitor_db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = path not in _READY or not path.exists()  # once per process and file: the answer path only inserts
    connection = sqlite3.connect(path, timeout=5.0)
    if fresh:
        connection.execute("PRAGMA journal_mode=WAL")  # persistent: it stays set in the database file
        connection.executescript(SCHEMA)
        _add_missing_columns(connection)
        _READY.add(path)
    return connection


def _add_missing_columns(connection: sqlite3.Connection) -> None:
    """Columns added to :data:`TABLES` since a store was created, appended to its tables (earlier rows: null)."""
    for table, columns in TABLES.items():
        present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns.items():
            if name not in present:
                connection.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
    connection.commit()


def record(cases: Iterable[Any], predictor: Any, source: str, seconds: float, path: Path | None = None) -> int:
    """Store one row per classified film of ``cases`` (:class:`pneumo_core.serving.answers.Case`; unreadable files are
    skipped), answered by ``predictor`` in ``seconds`` in all; returns the number of rows written."""
    if source not in SOURCES:
        raise ValueError(f"Unknown source {source!r}; one of {', '.join(SOURCES)}.")
    answered = [case for case in cases if case.prediction is not None]
    if not answered:
        return 0
    now, latency = time.time(), 1000.0 * seconds / len(answered)
    metadata = predictor.metadata
    rows = []
    for case in answered:
        verdict = case.verdict
        rows.append(
            (
                now,
                source,
                str(metadata.get("name", "unnamed")),
                str(metadata.get("model_sha256", "")),
                predictor.operating_point,
                verdict.label if verdict else "withheld",
                verdict.probability if verdict else None,
                case.prediction.logit,
                len(case.warnings),
                case.distance,
                float(case.canonical.mean()) if case.canonical is not None else None,
                float(case.canonical.std()) if case.canonical is not None else None,
                latency,
                verdict.decision if verdict else None,
            )
        )
    return insert("answers", rows, path)


def insert(table: str, rows: list[tuple], path: Path | None = None) -> int:
    """Append rows to a table of :data:`TABLES` and delete what is older than the retention; returns the rows written
    (0, with a warning in the log, if the store cannot be written: monitoring must never cost an answer)."""
    retention = monitor_retention_days()
    try:
        with closing(connect(path)) as connection, connection:
            connection.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(TABLES[table]))})", rows)
            if retention:
                connection.execute(f"DELETE FROM {table} WHERE time < ?", (time.time() - retention * 86400.0,))
    except (sqlite3.Error, OSError) as error:
        log.warning("monitoring store not written (%s)", type(error).__name__)
        return 0
    return len(rows)


def answers(since: float | None = None, path: Path | None = None, table: str = "answers") -> dict[str, np.ndarray]:
    """A table's rows since a Unix time (default: all), as one array per column."""
    columns = TABLES[table]
    with closing(connect(path)) as connection:
        cursor = connection.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE time >= ? ORDER BY time", (since or 0.0,))
        rows = cursor.fetchall()
    return {name: np.array([row[i] for row in rows], dtype=object) for i, name in enumerate(columns)}


@dataclass(frozen=True)
class Signal:
    """One monitored quantity of a window against its validation reference."""

    name: str
    n: int
    psi: float | None
    ks_statistic: float | None
    ks_pvalue: float | None

    @property
    def alert(self) -> bool:
        if self.n < MIN_ANSWERS or self.psi is None:
            return False
        return self.psi >= PSI_ALERT or self.ks_pvalue < KS_ALPHA

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n": self.n,
            "psi": self.psi,
            "ks_statistic": self.ks_statistic,
            "ks_pvalue": self.ks_pvalue,
            "alert": self.alert,
        }


def population_stability_index(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """PSI over the reference's quantile bins: Σ (c − r) · ln(c / r) of the two bin shares (0.5-count smoothing)."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_counts = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1) + 0.5
    cur_counts = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1) + 0.5
    ref_share, cur_share = ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def compare(name: str, reference: np.ndarray, current: np.ndarray) -> Signal:
    from scipy.stats import ks_2samp

    current = np.asarray([value for value in current if value is not None], np.float64)
    if len(current) == 0 or reference is None or len(reference) == 0:
        return Signal(name, len(current), None, None, None)
    test = ks_2samp(np.asarray(reference, np.float64), current)
    return Signal(name, len(current), population_stability_index(reference, current), float(test.statistic), float(test.pvalue))


def model_window(since: float | None, model_sha256: str, path: Path | None = None) -> tuple[dict[str, np.ndarray], int]:
    """(the rows since a time answered by the model with this SHA-256, how many rows other models answered)."""
    rows = answers(since, path)
    mine = rows["model_sha256"] == model_sha256
    return {name: values[mine] for name, values in rows.items()}, int((~mine).sum())


def validation_reference(model_dir: Path) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(feature distances, logits) of the model's validation films: the reference a window is compared with."""
    from pneumo_core.serving.ood import FeatureDensity
    from pneumo_core.store.model_dir import EVALUATION_DIR

    density = FeatureDensity.load(model_dir)
    path = Path(model_dir) / EVALUATION_DIR / "val_predictions.csv"
    logits = None
    if path.is_file():
        with path.open() as handle:
            logits = np.array([float(row["logit"]) for row in csv.DictReader(handle)])
    return (density.reference if density else None), logits


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """``7d``, ``12h``, ``30m`` ago, or an ISO date/time (UTC when it names no zone), as a Unix time."""
    from datetime import UTC, datetime

    if not text:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([dhm])", text.strip())
    if match:
        seconds = float(match[1]) * {"d": 86400.0, "h": 3600.0, "m": 60.0}[match[2]]
        return (now or time.time()) - seconds
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since {text!r}: give a duration such as 7d, 12h or 30m, or a date such as 2026-12-01") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def drift_report(window: dict[str, np.ndarray], reference_distances: np.ndarray, reference_logits: np.ndarray) -> dict:
    """``{"answers", "verdicts", "decisions", "drift": {"alert", "signals": [...], "withheld_left_out", "rule"}}`` for
    a window of stored rows (``decisions``: NORMAL, PNEUMONIA, REFER; rows stored before decisions were recorded are
    not counted). Drift is measured on the X-rays answered: films withheld as not an X-ray are counted apart."""
    verdicts = {name: int(np.sum(window["verdict"] == name)) for name in ("NORMAL", "PNEUMONIA", "withheld")}
    decisions = {name: int(np.sum(window["decision"] == name)) for name in ("NORMAL", "PNEUMONIA", "REFER")}
    xrays = window["verdict"] != "withheld"
    signals = [
        compare("feature distance", reference_distances, window["distance"][xrays]),
        compare("logit", reference_logits, window["logit"][xrays]),
    ]
    return {
        "answers": int(len(window["time"])),
        "verdicts": verdicts,
        "decisions": decisions,
        "drift": {
            "alert": any(signal.alert for signal in signals),
            "signals": [signal.as_json() for signal in signals],
            "withheld_left_out": verdicts["withheld"],
            "rule": f"a signal alerts when PSI ≥ {PSI_ALERT} or KS p < {KS_ALPHA}, with at least {MIN_ANSWERS} films; "
            "reference: the served model's validation films",
        },
    }
