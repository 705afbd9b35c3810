"""A shadow challenger: a second model scores every answered film beside the served one, never shown as the answer.

The app and the API hand each batch they answered to :meth:`Shadow.submit` after the answer is made; one background
thread runs the challenger on the films' canonical images (already decoded, held in memory only until scored) and
writes one row per film to the monitoring store's ``shadow`` table: both verdicts and probabilities, at each model's
own operating point, and both latencies. No image, file name or anything identifying is stored. If the challenger
falls behind, batches are dropped (and counted) rather than queued without bound, so a busy demo cannot run up the
machine through it.

:func:`shadow_report` summarises the rows (agreement, the verdict pairs, the probability pairs where they disagree,
latencies) and :func:`promotion_check` applies the rule under which the challenger may replace the champion.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pneumo_core.config import serving_settings
from pneumo_core.operations.monitoring_store import SHADOW_COLUMNS, StoreLocation, answers, insert

log = logging.getLogger(__name__)

MAX_PENDING = 4
"""Batches waiting for the challenger at most; more are dropped, never queued without bound."""
MIN_SHADOW_ANSWERS = 50
"""Films the challenger must have scored in the shadow before the promotion rule is applied."""


class Shadow:
    """Scores answered films with ``challenger`` off the answer's critical path (see the module docstring)."""

    def __init__(self, challenger: Any, directory: Path, store: StoreLocation | None = None):
        self.challenger = challenger  # a pneumo_core.serving.predictor.Predictor
        self.directory = directory  # its model directory
        self.store = store  # the monitoring store (default $PNEUMO_MONITOR_DB)
        self.dropped = 0  # batches not scored because the challenger was behind (counted under _lock)
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_PENDING)  # one per batch queued or being scored
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow-challenger")

    @property
    def name(self) -> str:
        return str(self.challenger.metadata.get("name", "unnamed"))

    @property
    def sha256(self) -> str:
        return str(self.challenger.metadata.get("model_sha256", ""))

    def submit(self, cases: Iterable[Any], champion: Any, seconds: float, source: str) -> Future | None:
        """Queue the classified films of ``cases`` (answered by ``champion`` in ``seconds``) for the challenger;
        returns the pending work, or None when nothing was queued (no film, or the challenger is behind)."""
        answered = [case for case in cases if case.prediction is not None and case.canonical is not None]
        if not answered:
            return None
        if not self._slots.acquire(blocking=False):
            with self._lock:
                self.dropped += 1
            return None
        canonical = np.stack([case.canonical for case in answered])
        champion_side = [(case.verdict.label if case.verdict else "withheld", case.prediction.probability) for case in answered]
        champion_ms = 1000.0 * seconds / len(answered)
        sha256 = str(champion.metadata.get("model_sha256", ""))
        return self._worker.submit(self._score, canonical, champion_side, champion_ms, sha256, source)

    def _score(self, canonical: np.ndarray, champion_side, champion_ms: float, champion_sha256: str, source: str) -> int:
        try:
            started = time.perf_counter()
            predictions = self.challenger.predict_canonical(canonical)
            challenger_ms = 1000.0 * (time.perf_counter() - started) / len(canonical)
            now = time.time()
            rows = [
                dict(zip(SHADOW_COLUMNS, (now, source, champion_sha256, self.name, self.sha256, verdict, prediction.label,
                                          probability, prediction.probability, champion_ms, challenger_ms)))
                for (verdict, probability), prediction in zip(champion_side, predictions)
            ]  # fmt: skip
            return insert("shadow", rows, self.store)
        except Exception as error:  # noqa: BLE001 - the shadow must never disturb serving: log and go on
            log.warning("shadow challenger failed (%s)", type(error).__name__)
            return 0
        finally:
            self._slots.release()

    def close(self) -> None:
        self._worker.shutdown(wait=True)


def load_shadow(runtime: str = "auto", store: StoreLocation | None = None) -> Shadow | None:
    """The challenger ``$PNEUMO_CHALLENGER`` names, loaded and warmed, or None when none is set or it cannot load
    (logged: serving goes on without a shadow)."""
    from pneumo_core.serving.predictor import Predictor
    from pneumo_core.store.mlflow_registry import resolve_model_uri
    from pneumo_core.store.model_dir import ModelLoadError

    spec = serving_settings().challenger
    if not spec:
        return None
    try:
        directory = resolve_model_uri(spec) if spec.startswith("models:/") else Path(spec)
        challenger = Predictor.load(directory, runtime=runtime)
        challenger.warm_up()
    except (ModelLoadError, ValueError, OSError) as error:
        log.warning("no shadow challenger: %s", error)
        return None
    return Shadow(challenger, directory, store)


@dataclass(frozen=True)
class ShadowReport:
    answers: int
    agreement: float | None
    pairs: dict[str, int]  # "champion → challenger" verdicts → films
    disagreements: list[tuple[float, float]]  # (champion, challenger) probabilities where the verdicts differ
    champion_latency_ms: float | None
    challenger_latency_ms: float | None
    challengers: list[str]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def shadow_report(
    since: float | None = None,
    champion_sha256: str | None = None,
    store: StoreLocation | None = None,
    challenger_sha256: str | None = None,
) -> ShadowReport:
    """What the shadow recorded since a Unix time, for one champion and one challenger (their SHA-256s) or all: the
    promotion rule counts only the films the current challenger itself scored, never an earlier challenger's."""
    rows = answers(since, store, table="shadow")
    keep = np.ones(len(rows["time"]), bool)
    if champion_sha256 is not None:
        keep &= rows["champion_sha256"] == champion_sha256
    if challenger_sha256 is not None:
        keep &= rows["challenger_sha256"] == challenger_sha256
    rows = {key: values[keep] for key, values in rows.items()}
    n = int(keep.sum())
    if not n:
        return ShadowReport(0, None, {}, [], None, None, [])
    champion, challenger = rows["champion_verdict"], rows["challenger_verdict"]
    differ = champion != challenger
    pairs = Counter(f"{a} → {b}" for a, b in zip(champion, challenger))
    return ShadowReport(
        answers=n,
        agreement=float(np.mean(~differ)),
        pairs=dict(sorted(pairs.items())),
        disagreements=[
            (float(a), float(b)) for a, b in zip(rows["champion_probability"][differ], rows["challenger_probability"][differ])
        ],
        champion_latency_ms=float(np.median(rows["champion_latency_ms"].astype(float))),
        challenger_latency_ms=float(np.median(rows["challenger_latency_ms"].astype(float))),
        challengers=sorted(set(rows["challenger"])),
    )


def promotion_check(champion_dir: Path, challenger_dir: Path, report: ShadowReport) -> tuple[bool, list[str]]:
    """The rule under which the challenger may replace the champion: the verdict and each condition's outcome.

    The challenger must (1) have scored at least :data:`MIN_SHADOW_ANSWERS` films in the shadow, and (2) have passed
    the serving rule against this champion (:data:`pneumo_core.evaluation.comparison.SERVING_RULE`: a site-sample
    ROC-AUC gain whose paired patient-bootstrap bound is above 0, the internal test not paying for it), as
    ``python -m pneumo_core compare`` records it in the challenger's metadata. A difference inside the site sample's
    noise is no reason to change the served model.
    """
    from pneumo_core.store.model_dir import read_metadata

    outcomes: list[tuple[bool, str]] = [
        (report.answers >= MIN_SHADOW_ANSWERS, f"{report.answers} films scored in the shadow (≥ {MIN_SHADOW_ANSWERS} needed)")
    ]
    champion_sha256 = read_metadata(champion_dir).get("model_sha256")
    comparison = read_metadata(challenger_dir).get("comparison")
    if not comparison or comparison.get("reference_sha256") != champion_sha256:
        outcomes.append((False, "not yet compared with the served model (python -m pneumo_core compare CHALLENGER_DIR)"))
    else:
        site, internal = comparison["site"], comparison["internal"]
        outcomes.append(
            (
                bool(comparison["passes"]),
                f"site-sample ROC AUC {site['difference']:+.4f} (one-sided 95% bound {site['lower_bound']:+.4f}, must be "
                f"above 0), internal test {internal['difference']:+.4f}",
            )
        )
    return all(ok for ok, _ in outcomes), [f"{'✓' if ok else '✗'} {text}" for ok, text in outcomes]
