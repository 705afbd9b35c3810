"""Site profiles: a model's operating point fitted on a hospital's own labelled sample.

A model's validation threshold comes from patients of the training collection. Films
from another site or a later collection shift the probabilities (here: normal films
score higher), so a site hands over a small labelled sample and :func:`calibrate`
fits on it

- a temperature T (negative log-likelihood of sigmoid(logit / T), as on validation), and
- a threshold on the calibrated probability under a named :class:`Rule`,

and reports the metrics at that operating point with 95% bootstrap intervals. The
profile is saved as ``MODEL_DIR/site_profiles/NAME.json``, bound to the model file by
its SHA-256; :func:`activate` makes it the operating point every entry point uses by
default (:func:`active_profile`). Metrics on the sample the threshold was chosen on
are optimistic for that site's future films: the profile says so in ``note``.

A profile holds aggregates only (metrics, curves, histograms), never file names or images.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .data import patient_id
from .logits import log_odds, sigmoid
from .registry import ModelLoadError, read_metadata

PROFILES_DIR = "site_profiles"
ACTIVE_FILE = "active.json"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_RULE = "sensitivity:0.97"
OPTIMISM_NOTE = "Metrics on the same films the temperature and threshold were fitted on: optimistic for this site's future films."
CROSS_VALIDATION_FOLDS, CROSS_VALIDATION_REPEATS = 5, 20
""":func:`cross_validated`: patient-grouped folds, and how many random partitions into them are averaged."""
CROSS_VALIDATED_METRICS = ("accuracy", "sensitivity", "specificity")


class ProfileError(ValueError):
    """A site profile cannot be fitted, saved, loaded or activated; the message says why."""


@dataclass(frozen=True)
class Rule:
    """How the threshold is chosen on the site's labelled sample.

    - ``sensitivity:S``: the best specificity whose sensitivity on the sample is ≥ S (S = 0.97 leaves a
      margin of about one binomial standard deviation above a 0.95 floor for a sample of ~140 pneumonia
      films). Every threshold between the highest one meeting the floor and the highest normal film below
      it gives that specificity; the rule takes their centre in log-odds, so that neither the pneumonia
      film at the floor nor that normal film sits on the boundary (the highest threshold itself would give
      up sensitivity on the site's next films for no specificity on this sample);
    - ``cost:R``: the threshold minimising R · missed pneumonia + false alarms (a miss costs R false alarms);
    - ``youden``: the threshold maximising sensitivity + specificity − 1.

    These two are centred the same way: below the lowest minimising threshold (a film's probability) the next film
    is a normal one (passing a pneumonia film would lower the loss), so every threshold between that normal film and
    it makes the same calls, and the rule takes their centre in log-odds.
    """

    kind: str
    value: float | None = None

    @classmethod
    def parse(cls, text: str) -> Rule:
        kind, _, value = text.strip().lower().partition(":")
        try:
            if kind == "sensitivity" and 0.5 <= float(value) <= 1.0:
                return cls(kind, float(value))
            if kind == "cost" and float(value) > 0:
                return cls(kind, float(value))
            if kind == "youden" and not value:
                return cls(kind)
        except ValueError:
            pass
        raise ProfileError(f"Unknown threshold rule {text!r}: use sensitivity:S (0.5-1), cost:R (R > 0) or youden.")

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value:g}"

    def describe(self) -> str:
        if self.kind == "sensitivity":
            return (
                f"best site-sample specificity with sensitivity >= {self.value:.2f}, the threshold centred (log-odds) "
                "among those giving it"
            )
        if self.kind == "cost":
            return f"threshold minimising {self.value:g} x missed pneumonia + false alarms on the site sample"
        return "threshold maximising sensitivity + specificity - 1 (Youden) on the site sample"

    def threshold(self, labels: np.ndarray, probabilities: np.ndarray) -> float:
        """The chosen threshold (a film at it is called PNEUMONIA)."""
        labels = np.asarray(labels).astype(int)
        probabilities = np.asarray(probabilities, dtype=float)
        if labels.min(initial=1) == labels.max(initial=0) or len(labels) == 0:
            raise ProfileError("The sample needs films of both classes (NORMAL and PNEUMONIA).")
        if self.kind == "sensitivity":
            from .metrics import choose_threshold

            highest = choose_threshold(labels, probabilities, self.value)
            return _centred_below(highest, probabilities[labels == 0])
        candidates = np.unique(probabilities)
        called = probabilities[None, :] >= candidates[:, None]  # (threshold, film)
        missed = ((~called) & (labels == 1)).sum(axis=1)
        false_alarms = (called & (labels == 0)).sum(axis=1)
        if self.kind == "cost":
            loss = self.value * missed + false_alarms
        else:
            loss = -((labels.sum() - missed) / labels.sum() + ((labels == 0).sum() - false_alarms) / (labels == 0).sum())
        lowest = float(candidates[int(np.argmin(loss))])  # ties: the lowest such threshold (fewest misses)
        return _centred_below(lowest, probabilities[labels == 0])


def _centred_below(threshold: float, normal_probabilities: np.ndarray) -> float:
    """Midway in log-odds between ``threshold`` and the highest normal film's probability below it (``threshold``
    itself when none is below): every threshold in that range calls the same normal films pneumonia."""
    below = normal_probabilities[normal_probabilities < threshold]
    if not below.size:
        return threshold
    low, high = log_odds(np.clip([below.max(), threshold], 1e-12, 1 - 1e-12))
    return float(sigmoid((low + high) / 2))


@dataclass(frozen=True)
class SiteProfile:
    name: str
    threshold: float
    temperature: float
    rule: str
    rule_description: str
    n: int
    n_normal: int
    n_pneumonia: int
    data_sha256: str
    created: str
    model_name: str
    model_sha256: str
    metrics: dict[str, float]
    intervals: dict[str, list[float]]
    validation_operating_point: dict[str, float]  # the same films at the model's validation threshold and temperature
    diagnostics: dict[str, Any] = field(default_factory=dict)
    unreadable: int = 0
    note: str = OPTIMISM_NOTE
    runtime: str = "not recorded"  # the serving runtime whose scores were fitted (int8 and float32 differ slightly)
    cross_validated: dict[str, Any] | None = None  # the rule refitted without each film's patient: see cross_validated

    @property
    def operating_point(self) -> str:
        return f"site:{self.name}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=float) + "\n"


def describe_cross_validated(estimate: dict[str, Any]) -> str:
    """One sentence for a :func:`cross_validated` estimate."""
    values = ", ".join(
        f"{key} {estimate[key]:.3f} ({estimate['range'][key][0]:.3f}-{estimate['range'][key][1]:.3f})"
        for key in CROSS_VALIDATED_METRICS
    )
    return (
        f"Cross-validated on the sample (the rule refitted without each film's patient, {estimate['folds']} folds, "
        f"mean of {estimate['repeats']} partitions, their range in brackets): {values}. Expect about this on the "
        "site's next films."
    )


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name or ""):
        raise ProfileError("A site name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.")
    return name


def calibrate(
    scores,
    metadata: dict[str, Any],
    name: str,
    rule: Rule,
    reference_distances: np.ndarray | None = None,
    runtime: str = "not recorded",
) -> SiteProfile:
    """Fit a profile on a labelled folder's :class:`~pneumo_core.scoring.FolderScores` (scored on ``runtime``) for the
    model of ``metadata``."""
    from .metrics import bootstrap_intervals, classification_metrics, fit_temperature

    check_name(name)
    labels = scores.labels
    if len(labels) == 0 or len(np.unique(labels)) < 2:
        raise ProfileError("The folder needs readable films of both classes (NORMAL/ and PNEUMONIA/).")
    temperature = fit_temperature(labels, scores.logits)
    probabilities = sigmoid(scores.logits / temperature)
    threshold = rule.threshold(labels, probabilities)
    metrics = classification_metrics(labels, probabilities, threshold)
    intervals = bootstrap_intervals(labels, probabilities, threshold)
    validation_probabilities = sigmoid(scores.logits / float(metadata.get("temperature", 1.0)))
    at_validation = classification_metrics(labels, validation_probabilities, float(metadata["threshold"]))
    return SiteProfile(
        name=name,
        threshold=threshold,
        temperature=temperature,
        rule=str(rule),
        rule_description=rule.describe(),
        n=int(len(labels)),
        n_normal=int((labels == 0).sum()),
        n_pneumonia=int((labels == 1).sum()),
        data_sha256=scores.data_sha256,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        model_name=str(metadata.get("name", "unnamed")),
        model_sha256=str(metadata["model_sha256"]),
        metrics=metrics,
        intervals={key: list(value) for key, value in intervals.items()},
        validation_operating_point=at_validation,
        diagnostics=diagnostics(labels, probabilities, scores.distances, scores.warned, reference_distances),
        unreadable=len(scores.errors),
        runtime=runtime,
        cross_validated=cross_validated(
            labels, scores.logits, np.asarray([patient_id(Path(file).name) for file in scores.files]), rule
        ),
    )


def cross_validated(
    labels: np.ndarray,
    logits: np.ndarray,
    patients: np.ndarray,
    rule: Rule,
    folds: int = CROSS_VALIDATION_FOLDS,
    repeats: int = CROSS_VALIDATION_REPEATS,
    seed: int = 0,
) -> dict[str, Any] | None:
    """What fitting a profile on a site's sample gives on that site's *other* films, estimated on the sample itself.

    The films are split into ``folds`` groups stratified by class and grouped by patient
    (:class:`~sklearn.model_selection.StratifiedGroupKFold`); the temperature and the ``rule``'s threshold are fitted
    on all folds but one and the held-out fold's films are called at that operating point, so every film is called
    once by a profile fitted without its patient. The pooled accuracy, sensitivity and specificity are averaged over
    ``repeats`` random partitions (``range``: their lowest and highest). The fits see 1 - 1/folds of the films, so the
    estimate is slightly pessimistic for a profile fitted on all of them, and far less optimistic than the metrics on
    the films it was fitted on. ``None`` when a class has fewer than two patients.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    from .metrics import fit_temperature

    labels = np.asarray(labels).astype(int)
    logits = np.asarray(logits, dtype=float)
    folds = min(folds, *(len(np.unique(patients[labels == c])) for c in (0, 1)))
    if folds < 2:
        return None
    runs = []
    for repeat in range(repeats):
        called = np.zeros(len(labels), dtype=bool)
        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed + repeat)
        for fit, held_out in splitter.split(logits, labels, patients):
            if len(np.unique(labels[fit])) < 2:
                raise ProfileError("The sample is too small to cross-validate its operating point.")
            temperature = fit_temperature(labels[fit], logits[fit])
            threshold = rule.threshold(labels[fit], sigmoid(logits[fit] / temperature))
            called[held_out] = sigmoid(logits[held_out] / temperature) >= threshold
        runs.append([np.mean(called == labels), called[labels == 1].mean(), (~called[labels == 0]).mean()])
    runs = np.asarray(runs)  # (repeat, metric) in the order of CROSS_VALIDATED_METRICS
    return {
        "folds": folds,
        "repeats": repeats,
        **{key: float(runs[:, i].mean()) for i, key in enumerate(CROSS_VALIDATED_METRICS)},
        "range": {key: [float(runs[:, i].min()), float(runs[:, i].max())] for i, key in enumerate(CROSS_VALIDATED_METRICS)},
    }


def diagnostics(
    labels: np.ndarray,
    probabilities: np.ndarray,
    distances: np.ndarray,
    warned: np.ndarray,
    reference_distances: np.ndarray | None = None,
) -> dict[str, Any]:
    """Aggregates for the shift diagnostics: ROC curve, reliability bins, per-class probability histograms,
    the feature-distance distribution (and the training reference's, when given). No per-film data."""
    from sklearn.metrics import roc_curve

    from .metrics import reliability_curve

    fpr, tpr, _ = roc_curve(labels, probabilities)
    predicted, observed, counts = reliability_curve(labels, probabilities)
    edges = np.linspace(0.0, 1.0, 21)
    finite = distances[np.isfinite(distances)]
    reference = np.asarray(reference_distances if reference_distances is not None else [], dtype=float)
    both = np.concatenate([finite, reference])
    top = max(float(np.quantile(both, 0.995)), 1.0) if len(both) else 1.0
    distance_edges = np.linspace(0.0, top, 31)
    result: dict[str, Any] = {
        "roc": {"fpr": _rounded(fpr), "tpr": _rounded(tpr)},
        "reliability": {"predicted": _rounded(predicted), "observed": _rounded(observed), "count": counts.tolist()},
        "probability_histogram": {
            "edges": _rounded(edges),
            "NORMAL": np.histogram(probabilities[labels == 0], edges)[0].tolist(),
            "PNEUMONIA": np.histogram(probabilities[labels == 1], edges)[0].tolist(),
        },
        "distance_histogram": {
            "edges": _rounded(distance_edges),
            "site": np.histogram(np.clip(finite, 0, top), distance_edges)[0].tolist(),
        },
        "distance_median": float(np.median(finite)) if len(finite) else None,
        "not_an_xray_warnings": int(np.asarray(warned).sum()),
    }
    if len(reference):
        result["distance_histogram"]["reference"] = np.histogram(np.clip(reference, 0, top), distance_edges)[0].tolist()
        result["reference_distance_median"] = float(np.median(reference))
    return result


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 5) for v in values]


# ----- storage and activation ------------------------------------------------------------


def profiles_dir(model_dir: Path) -> Path:
    return Path(model_dir) / PROFILES_DIR


def save_profile(profile: SiteProfile, model_dir: Path) -> Path:
    """Write ``MODEL_DIR/site_profiles/NAME.json`` (replacing a profile of the same name) atomically."""
    _check_binding(profile, read_metadata(model_dir), model_dir)
    directory = profiles_dir(model_dir)
    directory.mkdir(exist_ok=True)
    path = directory / f"{check_name(profile.name)}.json"
    staging = path.with_suffix(".json.tmp")
    staging.write_text(profile.to_json())
    staging.replace(path)
    return path


def load_profile(model_dir: Path, name: str) -> SiteProfile:
    """A saved profile, checked to belong to this directory's model file."""
    path = profiles_dir(model_dir) / f"{check_name(name)}.json"
    if not path.is_file():
        raise ProfileError(f"There is no site profile named {name!r} for the model in {model_dir}.")
    try:
        profile = SiteProfile(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as error:
        raise ProfileError(f"The site profile {path.name} cannot be read ({error}).") from None
    _check_binding(profile, read_metadata(model_dir), model_dir)
    return profile


def list_profiles(model_dir: Path) -> list[str]:
    directory = profiles_dir(model_dir)
    return sorted(p.stem for p in directory.glob("*.json") if p.name != ACTIVE_FILE) if directory.is_dir() else []


def _check_binding(profile: SiteProfile, metadata: dict[str, Any], model_dir: Path) -> None:
    if profile.model_sha256 != metadata.get("model_sha256"):
        raise ProfileError(
            f"The site profile {profile.name!r} was fitted for another model ({profile.model_name}, "
            f"file SHA-256 {profile.model_sha256[:12]}…), not the one in {model_dir}. Recalibrate this model on the site's "
            "films (python -m pneumo_core calibrate)."
        )


def activate(model_dir: Path, name: str | None) -> SiteProfile | None:
    """Make a saved profile the default operating point (``None``: back to the validation threshold)."""
    path = profiles_dir(model_dir) / ACTIVE_FILE
    if name is None:
        path.unlink(missing_ok=True)
        return None
    profile = load_profile(model_dir, name)  # refuses a foreign or missing profile
    staging = path.with_suffix(".tmp")
    staging.write_text(json.dumps({"profile": name, "activated": datetime.now(UTC).isoformat(timespec="seconds")}) + "\n")
    staging.replace(path)
    return profile


def active_profile(model_dir: Path) -> SiteProfile | None:
    """The active profile, or None (the validation threshold). A broken or foreign active profile raises
    :class:`~pneumo_core.registry.ModelLoadError`: the model is not served at an operating point nobody chose."""
    path = profiles_dir(model_dir) / ACTIVE_FILE
    if not path.is_file():
        return None
    try:
        return load_profile(model_dir, json.loads(path.read_text())["profile"])
    except (ProfileError, json.JSONDecodeError, KeyError) as error:
        raise ModelLoadError(f"The active site profile cannot be used: {error}") from None
