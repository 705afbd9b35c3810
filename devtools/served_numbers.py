"""The served model's numbers, written into the documents that quote them, so that none can drift.

    python -m devtools.served_numbers          # rewrite every marked block of README.md, MODEL_CARD.md and docs/

A block sits between ``<!-- generated: NAME ... -->`` and ``<!-- end generated: NAME -->``; :data:`BLOCKS` names
what each holds. ``tests/test_docs.py`` fails when a block differs from what the served model directory
(``models/served``: its metadata and active site profile, and its answers to the example films) gives.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from pneumo_core.operating_point.promises import AT_MOST, FIGURES
from pneumo_core.store.model_dir import EVALUATION_DIR, SANITY_FILE, read_metadata
from pneumo_core.store.profiles import SiteProfile, active_profile

ROOT = Path(__file__).resolve().parent.parent
SERVED = ROOT / "models" / "served"
NAMES = {
    "sensitivity": "sensitivity (at the threshold)",
    "specificity": "specificity (at the threshold)",
    "decided_sensitivity": "sensitivity of the decided films",
    "decided_specificity": "specificity of the decided films",
    "referred": "films referred",
    "missed_by_normal": "pneumonia films called NORMAL",
    "normal_called_pneumonia": "normal films called PNEUMONIA",
}


def documents() -> list[Path]:
    """Every document that may quote the served model."""
    return [ROOT / "README.md", ROOT / "MODEL_CARD.md", *sorted((ROOT / "docs").glob("*.md"))]


def begin(name: str) -> str:
    return f"<!-- generated: {name} (python -m devtools.served_numbers; do not edit) -->"


def end(name: str) -> str:
    return f"<!-- end generated: {name} -->"


def operating_point(model_dir: Path = SERVED) -> list[str]:
    """The served site profile: threshold, band, promises, what the sample gave, the simulation."""
    metadata, profile = read_metadata(model_dir), active_profile(model_dir)
    if profile is None:
        raise SystemExit("the served model has no active site profile")
    return _lines(metadata, profile)


def internal_test(model_dir: Path = SERVED) -> list[str]:
    """The internal test (held-out patients of the training collection) at the validation threshold."""
    metadata = read_metadata(model_dir)
    metrics, intervals = metadata["metrics"]["test"], metadata["confidence_intervals"]["test"]
    cells = ", ".join(
        f"{label} {metrics[name]:.3f} ({intervals[name][0]:.3f}–{intervals[name][1]:.3f})"
        for name, label in (
            ("accuracy", "accuracy"),
            ("sensitivity", "sensitivity"),
            ("specificity", "specificity"),
            ("roc_auc", "ROC AUC"),
        )
    )
    return [
        f"Internal test ({metrics['n']} films of patients never trained on, the training collection), at the "
        f"validation threshold {metrics['threshold']:.3f}: {cells}; 95% intervals {metadata['confidence_intervals_method']}."
    ]


def example_answers() -> list[str]:
    """``predict`` on the example films, run as a user runs it (the served model, its active profile)."""
    done = subprocess.run(
        [sys.executable, "-m", "pneumo_core", "predict", "examples/"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return ["```", "$ python -m pneumo_core predict examples/", *done.stdout.splitlines(), "```"]


def saliency_sanity(model_dir: Path = SERVED) -> list[str]:
    """The cascading-randomisation table of ``evaluation/saliency_sanity.json``."""
    sanity = json.loads((model_dir / EVALUATION_DIR / SANITY_FILE).read_text())
    lines = [
        f"Measured on {sanity['model']} ({sanity['images']} internal-test images):",
        "",
        "| re-initialised | layers | Spearman ρ mean | median | sd | mean abs(ρ) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for stage in sanity["stages"]:
        lines.append(
            f"| {stage['stage']} | {stage['layers_randomised']} | {stage['spearman_mean']:.3f} | "
            f"{stage['spearman_median']:.3f} | {stage['spearman_std']:.3f} | {stage['abs_spearman_mean']:.3f} |"
        )
    return lines


def int8_check(model_dir: Path = SERVED) -> list[str]:
    """The int8 copy's check against float32 (``quantize``), as the metadata records it."""
    check = read_metadata(model_dir)["int8_check"]
    sets = "; ".join(
        f"{name}: {found['films']} films, verdicts agree {found['verdict_agreement']:.2%}, ROC AUC "
        f"{found['auc_float32']:.4f} → {found['auc_int8']:.4f}, largest probability change {found['max_probability_change']:.3f}"
        for name, found in check["sets"].items()
    )
    return [f"int8 against float32 ({'serves' if check['serves'] else 'does not serve'}; rule: {check['rule']}): {sets}."]


BLOCKS: dict[str, Callable[[], list[str]]] = {
    "served operating point": operating_point,
    "internal test": internal_test,
    "example answers": example_answers,
    "saliency sanity": saliency_sanity,
    "int8 check": int8_check,
}


def block(name: str) -> str:
    """The marked block ``name``, as it must read in every document that holds it."""
    return "\n".join([begin(name), *BLOCKS[name](), end(name)])


def _lines(metadata: dict, profile: SiteProfile) -> list[str]:
    promise, sample = profile.promise, profile.referral
    low, high = profile.band
    kept = profile.simulation["figures"] if profile.simulation else {}
    patients = profile.patients
    lines = [
        f"Served: **{metadata.get('name')}** at the site profile `{profile.name}` (rule `{profile.rule}`, band "
        f"`{profile.band_rule}`): threshold **{profile.threshold:.3f}** on P(pneumonia) calibrated with temperature "
        f"{profile.temperature:.2f}; referral band **{low:.3f}–{high:.3f}** (NORMAL below it, PNEUMONIA from its upper "
        f"edge, referred in between). Fitted on the site sample: {profile.n} films ({profile.n_normal} NORMAL, "
        f"{profile.n_pneumonia} PNEUMONIA) of {patients.get('NORMAL')} + {patients.get('PNEUMONIA')} children.",
        "",
        f"| figure, for the site's next {promise['next_films']} films | promised ({promise['confidence']:.0%} "
        "confidence each) | on the sample (fitted there: optimistic) | promise kept on simulated sites |",
        "| --- | --- | --- | --- |",
    ]
    for name in FIGURES:
        side = "at most" if name in AT_MOST else "at least"
        held = f"{kept[name]['kept']:.1%}" if name in kept else "—"
        lines.append(f"| {NAMES[name]} | {side} {promise[name]:.3f} | {sample[name]:.3f} | {held} |")
    metrics, intervals = profile.metrics, profile.intervals
    labels = {"accuracy": "accuracy", "sensitivity": "sensitivity", "specificity": "specificity", "roc_auc": "ROC AUC"}
    cells = ", ".join(
        f"{label} {metrics[name]:.3f} ({intervals[name][0]:.3f}–{intervals[name][1]:.3f})" for name, label in labels.items()
    )
    lines += [
        "",
        f"On the sample at the serving point (optimistic), with 95% intervals by patient: {cells}; "
        f"{metrics['tp']} TP, {metrics['fp']} FP, {metrics['tn']} TN, {metrics['fn']} FN; "
        f"{sample['referred']:.1%} of the films referred.",
    ]
    if profile.simulation:
        lines.append(
            f"Simulated sites: {profile.simulation['sites']}, each drawn by patient at the sample's size, fitted as "
            "`calibrate` fits and checked on as many next films."
        )
    return lines


def marked(text: str, name: str) -> list[str]:
    """Every block named ``name`` in ``text``, markers included."""
    return re.findall(re.escape(begin(name)) + r".*?" + re.escape(end(name)), text, re.S)


def rewrite(text: str) -> str:
    """``text`` with every marked block regenerated."""
    for name in BLOCKS:
        if marked(text, name):
            pattern = re.escape(begin(name)) + r".*?" + re.escape(end(name))
            text = re.sub(pattern, block(name).replace("\\", "\\\\"), text, flags=re.S)
    return text


if __name__ == "__main__":
    for document in documents():
        text = document.read_text()
        if rewrite(text) != text:
            document.write_text(rewrite(text))
            print(f"rewritten: {document.relative_to(ROOT)}")
