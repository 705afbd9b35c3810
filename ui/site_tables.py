"""Tables for site profiles: internal test beside each site, and each site's referral band.

Everything is drawn from stored aggregates (the model's metadata and evaluation CSV, the
profiles' metrics and curves): nothing is recomputed from films on a page visit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pneumo_core.common.logits import sigmoid
from pneumo_core.evaluation.metrics import classification_metrics
from pneumo_core.store.profiles import SiteProfile

HEADLINE = ("accuracy", "sensitivity", "specificity", "roc_auc")
PLAIN_NAMES = {
    "accuracy": "accuracy",
    "sensitivity": "sensitivity (recall)",
    "specificity": "specificity",
    "roc_auc": "ROC AUC",
    "precision": "precision (PPV)",
    "npv": "NPV",
    "f1": "F1",
    "pr_auc": "PR AUC (average precision)",
}


def _cell(value: float, interval: list[float] | tuple[float, float] | None) -> str:
    return f"{value:.3f}" + (f" ({interval[0]:.3f}–{interval[1]:.3f})" if interval else "")


def comparison_table(
    metadata: dict, profiles: list[SiteProfile], active: str, internal: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per data set and operating point: internal test, then each site at its own and the validation point,
    and (given the internal test's per-film logits) the internal test at each site's operating point."""
    test = metadata.get("metrics", {}).get("test", {})
    intervals = metadata.get("confidence_intervals", {}).get("test", {})
    rows = [
        {
            "data": f"internal test ({test['n']} films)" if "n" in test else "internal test",
            "operating point": f"validation {metadata['threshold']:.3f}",
            **{PLAIN_NAMES[k]: _cell(test[k], intervals.get(k)) for k in HEADLINE if k in test},
        }
    ]
    for profile in profiles:
        at_validation = profile.validation_operating_point
        serving = " (serving)" if profile.operating_point == active else ""
        rows.append(
            {
                "data": f"site {profile.name} ({profile.n} films)",
                "operating point": f"site profile {profile.threshold:.3f}{serving}",
                **{PLAIN_NAMES[k]: _cell(profile.metrics[k], profile.intervals.get(k)) for k in HEADLINE},
            }
        )
        promise = profile.promise
        if promise:
            rows.append(
                {
                    "data": f"site {profile.name}: promised for its next {promise['next_films']} films",
                    "operating point": f"site profile {profile.threshold:.3f}, {promise['confidence']:.0%} confidence",
                    PLAIN_NAMES["accuracy"]: "—",
                    PLAIN_NAMES["sensitivity"]: f"at least {promise['sensitivity']:.3f}",
                    PLAIN_NAMES["specificity"]: f"at least {promise['specificity']:.3f}",
                    PLAIN_NAMES["roc_auc"]: "—",
                }
            )
        rows.append(
            {
                "data": f"site {profile.name} ({profile.n} films)",
                "operating point": f"validation {metadata['threshold']:.3f}",
                **{PLAIN_NAMES[k]: f"{at_validation[k]:.3f}" for k in HEADLINE},
            }
        )
        if internal is not None:
            labels = (internal["label"] == "PNEUMONIA").to_numpy().astype(int)
            probabilities = sigmoid(internal["logit"].to_numpy(np.float32) / profile.temperature)
            at_site = classification_metrics(labels, probabilities, profile.threshold)
            rows.append(
                {
                    "data": f"internal test ({len(internal)} films)",
                    "operating point": f"site profile {profile.name} {profile.threshold:.3f}",
                    **{PLAIN_NAMES[k]: f"{at_site[k]:.3f}" for k in HEADLINE},
                }
            )
    return pd.DataFrame(rows)


def referral_table(profiles: list[SiteProfile]) -> pd.DataFrame:
    """Per site profile: its referral band, the share referred and the decided films' sensitivity and specificity, on
    the sample and as promised for its next films."""
    rows = []
    for profile in profiles:
        if not profile.referral:
            continue
        low, high = profile.band
        sample, promise = profile.referral, profile.promise
        rows.append(
            {
                "site": profile.name,
                "referral band": f"{low:.3f} – {high:.3f}",
                "referred (sample)": f"{sample['referred']:.1%}",
                "decided sensitivity (sample)": f"{sample['decided_sensitivity']:.3f}",
                "decided specificity (sample)": f"{sample['decided_specificity']:.3f}",
                "referred (promised)": f"at most {promise['referred']:.1%}" if promise else "—",
                "decided sensitivity (promised)": f"at least {promise['decided_sensitivity']:.3f}" if promise else "—",
                "decided specificity (promised)": f"at least {promise['decided_specificity']:.3f}" if promise else "—",
            }
        )
    return pd.DataFrame(rows)
