"""The served operating point's numbers, written into the documents that quote them, so that none can drift.

    python -m tests.served_numbers          # rewrite the marked blocks of README.md and MODEL_CARD.md

Each document holds one block between :data:`BEGIN` and :data:`END`; ``tests/test_docs.py`` fails when a block
differs from what the served model directory (``models/served``: its metadata and active site profile) gives.
"""

from __future__ import annotations

import re
from pathlib import Path

from pneumo_core.operating_point.promises import AT_MOST, FIGURES
from pneumo_core.store.model_dir import read_metadata
from pneumo_core.store.profiles import SiteProfile, active_profile

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = (ROOT / "README.md", ROOT / "MODEL_CARD.md")
BEGIN = "<!-- served operating point: generated from models/served by `python -m tests.served_numbers`; do not edit -->"
END = "<!-- end of the served operating point -->"
NAMES = {
    "sensitivity": "sensitivity (at the threshold)",
    "specificity": "specificity (at the threshold)",
    "decided_sensitivity": "sensitivity of the decided films",
    "decided_specificity": "specificity of the decided films",
    "referred": "films referred",
    "missed_by_normal": "pneumonia films called NORMAL",
    "normal_called_pneumonia": "normal films called PNEUMONIA",
}


def block(model_dir: Path = ROOT / "models" / "served") -> str:
    """The Markdown block for the served model's active site profile."""
    metadata, profile = read_metadata(model_dir), active_profile(model_dir)
    if profile is None:
        raise SystemExit("the served model has no active site profile")
    return "\n".join([BEGIN, *_lines(metadata, profile), END])


def _lines(metadata: dict, profile: SiteProfile) -> list[str]:
    promise, sample = profile.promise, profile.referral
    low, high = profile.band_edges
    kept = profile.simulation["figures"] if profile.simulation else {}
    patients = profile.patients
    lines = [
        f"Served: **{metadata.get('name')}** at the site profile `{profile.name}` (rule `{profile.rule}`, band "
        f"`{profile.band}`): threshold **{profile.threshold:.3f}** on P(pneumonia) calibrated with temperature "
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


def rewrite(text: str, generated: str) -> str:
    """``text`` with its marked block replaced by ``generated``."""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError("no marked block")
    return pattern.sub(lambda _: generated, text)


if __name__ == "__main__":
    generated = block()
    for document in DOCUMENTS:
        document.write_text(rewrite(document.read_text(), generated))
        print(f"rewritten: {document.relative_to(ROOT)}")
