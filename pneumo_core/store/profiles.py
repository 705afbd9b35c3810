"""Site profiles: a model's operating point fitted on a hospital's own labelled sample, kept beside the model.

A profile (fitted by :func:`pneumo_core.operating_point.calibration.calibrate`) holds a temperature, a threshold, the rule
that chose it and what it gave on the sample. It is saved as ``MODEL_DIR/site_profiles/NAME.json`` (or, with
``$PNEUMO_PROFILES_DIR`` set, in a folder of that model's own there), bound to the model file by its SHA-256;
:func:`activate` makes it the operating point every entry point uses by default (:func:`active_profile`). A profile
holds aggregates only (metrics, curves, histograms), never file names or images.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pneumo_core.config import locations
from pneumo_core.store.model_dir import ModelLoadError, read_metadata

PROFILES_DIR = "site_profiles"
ACTIVE_FILE = "active.json"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
OPTIMISM_NOTE = (
    "Metrics on the same films the temperature, threshold and band were fitted on: optimistic for this site's next "
    "films. The promise is what holds for them."
)


class ProfileError(ValueError):
    """A site profile cannot be fitted, saved, loaded or activated; the message says why."""


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
    referral_band: list[float] = field(default_factory=list)  # [low, high): referred between (ReferralRule)
    band_rule: str = "band:none"  # how the band was fitted (ReferralRule), as --band names it
    band_rule_description: str = ""
    referral: dict[str, Any] = field(default_factory=dict)  # on the sample: share referred, decided films' metrics
    withheld: int = 0  # films withheld as not an X-ray: no verdict, as predict answers them; not scored
    promise: dict[str, Any] = field(default_factory=dict)  # bounds on the next films (operating_point.promises.Promise)
    shortfalls: list[str] = field(default_factory=list)  # targets the sample cannot support, and the sample that would
    simulation: dict[str, Any] | None = None  # the fit checked on simulated sites (operating_point.simulation)
    patients: dict[str, Any] = field(default_factory=dict)  # patients per class in the sample
    notes: list[str] = field(default_factory=list)  # what the fit found worth saying (e.g. no patient structure)

    @property
    def operating_point(self) -> str:
        return f"site:{self.name}"

    @property
    def band(self) -> tuple[float, float]:
        """The referral band ``(low, high)``; the threshold on both sides for a profile fitted without one."""
        return (self.referral_band[0], self.referral_band[1]) if self.referral_band else (self.threshold, self.threshold)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=float) + "\n"


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name or ""):
        raise ProfileError("A site name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.")
    return name


def profiles_dir(model_dir: Path) -> Path:
    """``MODEL_DIR/site_profiles``; with ``$PNEUMO_PROFILES_DIR`` set (a read-only model directory), the folder there
    named by the model file's SHA-256, started on first use with the profiles shipped in the model directory."""
    shipped = Path(model_dir) / PROFILES_DIR
    root = locations().profiles_dir
    if root is None:
        return shipped
    own = root / str(read_metadata(model_dir).get("model_sha256", "unbound"))[:16]
    if not own.is_dir():
        if shipped.is_dir():
            shutil.copytree(shipped, own, dirs_exist_ok=True)
        else:
            own.mkdir(parents=True, exist_ok=True)
    return own


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
        raise ProfileError(
            f"The site profile {path.name} cannot be read ({error}): recalibrate it (python -m pneumo_core calibrate)."
        ) from None
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
    :class:`~pneumo_core.store.model_dir.ModelLoadError`: the model is not served at an operating point nobody chose."""
    path = profiles_dir(model_dir) / ACTIVE_FILE
    if not path.is_file():
        return None
    try:
        return load_profile(model_dir, json.loads(path.read_text())["profile"])
    except (ProfileError, json.JSONDecodeError, KeyError) as error:
        raise ModelLoadError(f"The active site profile cannot be used: {error}") from None
