"""Small display pieces shared by pages."""

from __future__ import annotations

import math

import streamlit as st

from pneumo_core import DISCLAIMER
from pneumo_core.serving.answers import Prediction

REFER_ASKS = "have a radiologist read this film"
"""What a REFER decision asks of the reader, in the same words on every surface (page, table, CSV, PDF)."""


def operating_point_label(operating_point: str | None) -> str:
    """``site:NAME`` → "site profile NAME"; ``validation`` → "validation threshold"."""
    if operating_point and operating_point.startswith("site:"):
        return f"site profile {operating_point.removeprefix('site:')}"
    return {"validation": "validation threshold", "manual": "threshold set by hand"}.get(operating_point or "", "unknown")


def disclaimer_banner() -> None:
    st.caption(f":material/info: **{DISCLAIMER}** Results are for demonstration and research only.")


def decision_words(prediction: Prediction) -> str:
    """The decision in the words every surface uses (page, table, CSV, PDF): the class, or the referral and why."""
    if prediction.referred:
        return f"REFER: {REFER_ASKS} (the model leans {prediction.label})"
    return prediction.decision


def probability_words(prediction: Prediction) -> str:
    """P(pneumonia) beside what it is judged against: the referral band when the film is referred ("61.2%, inside
    the referral band 46.5%–92.9%"), else the threshold ("86.4%, below the threshold of 86.5%")."""
    if prediction.referred:
        low, high = prediction.band
        return f"{prediction.probability:.1%}, inside the referral band {low:.1%}–{high:.1%}"
    side = "at or above" if prediction.probability >= prediction.threshold else "below"
    return f"{prediction.probability:.1%}, {side} the threshold of {prediction.threshold:.1%}"


def promise_table_words(promise: dict | None) -> str | None:
    """A site profile's promise in plain words, one line (None at the validation operating point)."""
    if not promise:
        return None
    return (
        f"Promised for this site's next {promise['next_films']} films ({promise['confidence']:.0%} confidence each): "
        f"at least {floor_percent(promise['sensitivity'])}% of films with pneumonia called PNEUMONIA by the threshold, "
        f"at least {floor_percent(1 - promise['missed_by_normal'])}% flagged or referred; at most "
        f"{ceil_percent(promise['normal_called_pneumonia'])}% of films without pneumonia called PNEUMONIA; at most "
        f"{ceil_percent(promise['referred'])}% of films referred."
    )


def floor_percent(share: float) -> int:
    """A share as a whole percentage rounded down (what an "at least" promise may say)."""
    return math.floor(100 * share + 1e-9)


def ceil_percent(share: float) -> int:
    """A share as a whole percentage rounded up (what an "at most" promise may say)."""
    return math.ceil(100 * share - 1e-9)


def verdict_text(prediction: Prediction) -> str:
    """The decision as the page's headline (Markdown)."""
    if prediction.referred:
        return f"**REFER**: {REFER_ASKS} (the model leans {prediction.label})"
    return f"**{prediction.decision}**"
