"""The monitoring store: one row per answered film (``answers``) and per film the shadow challenger scored (``shadow``).

Where it lives is ``$PNEUMO_MONITOR_DB`` (:attr:`pneumo_core.config.MonitorSettings.store`): a file path, for the embedded
SQLite default (``runs/monitor.db``), or a database URL such as ``postgresql://user@host:5432/db`` for a store that
several API replicas and the app share. Both go through SQLAlchemy Core (one engine, with its connection pool, per
store and process); the tables and their time indexes are created on first use, and a store created before a column
of :data:`TABLES` existed gains it (earlier rows: null). A SQLite store runs in WAL mode, so a killed process loses at
most its own last write and the app and the API can write at once; on every write, rows older than the retention
(``$PNEUMO_MONITOR_RETENTION_DAYS``) are deleted.

Nothing identifying is stored: no image, file name or DICOM field (the columns below are all there is).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from pneumo_core.config import monitor_settings

log = logging.getLogger(__name__)

StoreLocation = str | Path
"""A SQLite file path or a database URL (see the module docstring)."""

SOURCES = ("app", "api")
BUSY_TIMEOUT_S = 5.0
"""How long a SQLite writer waits for another one before giving up on its rows."""
RETRY_AFTER_S = 10.0
"""After the store could not be reached or written, how long rows are dropped (logged) before it is tried again."""
SCHEMA_ATTEMPTS = 6
"""Tries at creating the schema when another process creates it at the same moment (0.05 s, doubling, between)."""

COLUMNS = {
    "time": sa.Float,
    "source": sa.Text,
    "model": sa.Text,
    "model_sha256": sa.Text,
    "operating_point": sa.Text,
    "verdict": sa.Text,
    "probability": sa.Float,
    "logit": sa.Float,
    "warnings": sa.Integer,
    "distance": sa.Float,
    "image_mean": sa.Float,
    "image_std": sa.Float,
    "latency_ms": sa.Float,
    "decision": sa.Text,
}
"""The ``answers`` table: column → type (``verdict``: NORMAL, PNEUMONIA or withheld; ``decision``: NORMAL, PNEUMONIA,
REFER, or null when withheld, last, so that a store written before it existed gains it as a new column)."""
SHADOW_COLUMNS = {
    "time": sa.Float,
    "source": sa.Text,
    "champion_sha256": sa.Text,
    "challenger": sa.Text,
    "challenger_sha256": sa.Text,
    "champion_verdict": sa.Text,
    "challenger_verdict": sa.Text,
    "champion_probability": sa.Float,
    "challenger_probability": sa.Float,
    "champion_latency_ms": sa.Float,
    "challenger_latency_ms": sa.Float,
}
"""The ``shadow`` table (:mod:`pneumo_core.operations.shadow`): the challenger's answer beside the champion's, per film."""
NULLABLE = {"probability", "logit", "distance", "image_mean", "image_std", "latency_ms", "decision"}
"""Columns that may be null (a withheld film has no probability, a store older than ``decision`` none of it)."""
TABLES = {"answers": COLUMNS, "shadow": SHADOW_COLUMNS}

METADATA = sa.MetaData()
SCHEMA = {
    name: sa.Table(
        name,
        METADATA,
        *(sa.Column(column, kind, nullable=column in NULLABLE) for column, kind in columns.items()),
        sa.Index(f"{name}_time", "time"),
    )
    for name, columns in TABLES.items()
}


class StoreError(RuntimeError):
    """The monitoring store cannot be read; the message names it (without a password) and says why."""


_ENGINES: dict[str, sa.Engine] = {}
_DOWN_UNTIL: dict[str, float] = {}  # URL → monotonic time before which an unreachable store is not tried again
_ENGINES_LOCK = threading.Lock()


def database_url(location: StoreLocation | None = None) -> str:
    """The SQLAlchemy URL of a store location (default ``$PNEUMO_MONITOR_DB``): a URL as given, a path as SQLite."""
    location = str(location) if location is not None else monitor_settings().store
    return location if "://" in location else f"sqlite:///{Path(location).resolve()}"


def engine(location: StoreLocation | None = None) -> sa.Engine:
    """The engine of a store, made once per process (its pool shared by every thread); the schema is created, and
    missing columns added, when the engine is made. A store that could not be reached is not tried again for
    :data:`RETRY_AFTER_S` (:class:`StoreError` at once), so an outage costs the answer path no waiting."""
    url = database_url(location)
    with _ENGINES_LOCK:
        if time.monotonic() < _DOWN_UNTIL.get(url, 0.0):
            raise StoreError(
                f"The monitoring store {describe(url)} cannot be read (unreachable a moment ago; tried again within "
                f"{RETRY_AFTER_S:.0f} s)."
            )
        if url not in _ENGINES:
            try:
                _ENGINES[url] = _create(url)
            except (sa.exc.SQLAlchemyError, OSError):
                mark_unreachable(url)
                raise
        return _ENGINES[url]


def mark_unreachable(location: StoreLocation | None = None) -> None:
    """Do not try the store again for :data:`RETRY_AFTER_S`."""
    _DOWN_UNTIL[database_url(location)] = time.monotonic() + RETRY_AFTER_S


def _create(url: str) -> sa.Engine:
    if url.startswith("sqlite:"):
        Path(sa.make_url(url).database).parent.mkdir(parents=True, exist_ok=True)
        made = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
        sa.event.listen(made, "connect", _sqlite_wal)
    else:
        server = {"connect_args": {"connect_timeout": int(BUSY_TIMEOUT_S)}} if url.startswith("postgresql") else {}
        made = sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4, pool_timeout=BUSY_TIMEOUT_S, **server)
    try:
        made.connect().close()  # unreachable: said at once, without the retries below (meant for a race)
    except sa.exc.SQLAlchemyError:
        made.dispose()
        raise
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            METADATA.create_all(made)
            _add_missing_columns(made)
            return made
        except sa.exc.SQLAlchemyError:
            # Two processes creating the schema at once: SQLite refuses the second one's read-then-write at once
            # (no busy wait, to avoid a deadlock), PostgreSQL may report the other's table as a duplicate. Once the
            # first is done, the check finds the tables.
            if attempt + 1 == SCHEMA_ATTEMPTS:
                made.dispose()
                raise
            time.sleep(0.05 * 2**attempt)
    return made


def _sqlite_wal(connection: Any, _record: Any) -> None:
    """WAL journal on every SQLite connection (persistent in the file; set again, harmlessly, on each connect)."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _add_missing_columns(made: sa.Engine) -> None:
    """Columns added to :data:`TABLES` since a store was created, appended to its tables (earlier rows: null)."""
    inspector = sa.inspect(made)
    with made.begin() as connection:
        for name, table in SCHEMA.items():
            present = {column["name"] for column in inspector.get_columns(name)}
            for column in table.columns:
                if column.name not in present:
                    kind = column.type.compile(dialect=made.dialect)
                    connection.execute(sa.text(f"ALTER TABLE {name} ADD COLUMN {column.name} {kind}"))


def describe(location: StoreLocation | None = None) -> str:
    """The store's location for people: a path, or the URL without its password."""
    url = sa.make_url(database_url(location))
    return url.database if url.drivername == "sqlite" else url.render_as_string(hide_password=True)


def record(cases: Iterable[Any], predictor: Any, source: str, seconds: float, location: StoreLocation | None = None) -> int:
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
        canonical = case.canonical
        rows.append(
            {
                "time": now,
                "source": source,
                "model": str(metadata.get("name", "unnamed")),
                "model_sha256": str(metadata.get("model_sha256", "")),
                "operating_point": predictor.operating_point,
                "verdict": verdict.label if verdict else "withheld",
                "probability": verdict.probability if verdict else None,
                "logit": case.prediction.logit,
                "warnings": len(case.warnings),
                "distance": case.distance,
                "image_mean": float(canonical.mean()) if canonical is not None else None,
                "image_std": float(canonical.std()) if canonical is not None else None,
                "latency_ms": latency,
                "decision": verdict.decision if verdict else None,
            }
        )
    return insert("answers", rows, location)


def insert(table: str, rows: list[dict[str, Any]], location: StoreLocation | None = None) -> int:
    """Append rows (column → value) to a table of :data:`TABLES` and delete what is older than the retention; returns
    the rows written (0, with a warning in the log, if the store cannot be reached or written: monitoring must never
    cost an answer)."""
    retention = monitor_settings().monitor_retention_days
    target = SCHEMA[table]
    try:
        with engine(location).begin() as connection:
            connection.execute(target.insert(), rows)
            if retention:
                connection.execute(target.delete().where(target.c.time < time.time() - retention * 86400.0))
    except StoreError:
        return 0  # already logged when it went down
    except (sa.exc.SQLAlchemyError, OSError) as error:
        if database_url(location).startswith("sqlite:"):
            log.warning("monitoring store not written (%s)", type(error).__name__)  # a busy file: the next write tries
        else:
            mark_unreachable(location)  # a server that is down: the next answers do not wait for it
            log.warning("monitoring store not written (%s); rows dropped for %.0f s", type(error).__name__, RETRY_AFTER_S)
        return 0
    return len(rows)


def answers(since: float | None = None, location: StoreLocation | None = None, table: str = "answers") -> dict[str, np.ndarray]:
    """A table's rows since a Unix time (default: all), oldest first, as one array per column (:class:`StoreError`
    when the store cannot be reached or read)."""
    source = SCHEMA[table]
    query = sa.select(source).where(source.c.time >= (since or 0.0)).order_by(source.c.time)
    try:
        with engine(location).connect() as connection:
            rows = connection.execute(query).all()
    except StoreError:
        raise
    except (sa.exc.SQLAlchemyError, OSError) as error:
        raise StoreError(f"The monitoring store {describe(location)} cannot be read ({type(error).__name__}).") from None
    return {name: np.array([row[i] for row in rows], dtype=object) for i, name in enumerate(TABLES[table])}
