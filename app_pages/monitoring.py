"""Monitoring: what the served model answered (app and API), and whether the inputs drift from validation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from pneumo_core.config import monitor_settings
from pneumo_core.evaluation.comparison import SERVING_RULE
from pneumo_core.operations.monitor import (
    KS_ALPHA,
    MIN_ANSWERS,
    PSI_ALERT,
    drift_report,
    drift_verdict,
    model_window,
    parse_since,
    validation_reference,
)
from pneumo_core.operations.monitoring_store import StoreError, describe
from pneumo_core.operations.shadow import MIN_SHADOW_ANSWERS, Shadow, promotion_check, shadow_report
from pneumo_core.store.model_dir import read_metadata
from pneumo_core.store.profiles import ProfileError, active_profile, load_profile
from pneumo_core.visualize.distributions import answers_per_day, disagreements, reference_and_answered
from ui.operator_actions import promote_model
from ui.operator_gate import is_operator
from ui.resources import Served, served_model_or_stop, shadow_challenger

WINDOWS = {"last 24 hours": "24h", "last 7 days": "7d", "last 30 days": "30d", "everything kept": None}


def volume_and_decisions(window: dict[str, np.ndarray]) -> None:
    """Answers per day by decision (NORMAL, PNEUMONIA, REFER; withheld films, and rows stored before decisions were
    recorded, by their verdict)."""
    decisions = [d if d else v for d, v in zip(window["decision"], window["verdict"])]
    frame = pd.DataFrame({"day": pd.to_datetime(window["time"].astype(float), unit="s").floor("D"), "verdict": decisions})
    counts = frame.groupby(["day", "verdict"]).size().unstack(fill_value=0)
    per_decision = {str(verdict): counts[verdict].tolist() for verdict in counts.columns}
    st.plotly_chart(answers_per_day(counts.index.strftime("%Y-%m-%d").tolist(), per_decision), width="stretch")


def counted(count: int, noun: str) -> str:
    """The count and the noun, plural unless the count is one."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def drift_section(report: dict, window: dict[str, np.ndarray], distances, logits) -> None:
    drift = report["drift"]
    kind, sentence = drift_verdict(report)
    if kind == "alert":
        st.error(sentence, icon=":material/warning:")
    elif kind == "waiting":
        st.info(sentence)
    else:
        st.success(sentence, icon=":material/check_circle:")
    st.dataframe(
        pd.DataFrame(
            [
                {  # the alert next to the signal: at 800 px a last column was cut
                    "signal": signal["name"],
                    "alert": (
                        "yes"
                        if signal["alert"]
                        else "no"
                        if signal["n"] >= MIN_ANSWERS
                        else f"too few films ({signal['n']} of {MIN_ANSWERS})"
                    ),
                    "films": signal["n"],
                    "PSI": "—" if signal["psi"] is None else f"{signal['psi']:.3f}",
                    "KS p-value": "—" if signal["ks_pvalue"] is None else f"{signal['ks_pvalue']:.2g}",
                }
                for signal in drift["signals"]
            ]
        ),
        hide_index=True,
    )
    st.caption(
        f"A signal alerts when its population stability index is ≥ {PSI_ALERT} (the usual 'significant shift' rule) or "
        f"the Kolmogorov-Smirnov test rejects 'same distribution' at p < {KS_ALPHA}, with at least {MIN_ANSWERS} films. "
        "The feature distance says how unlike the training films the inputs are; the logit, how the model's scores "
        "have moved. Drift is a reason to validate on the site's own labelled films (Site profiles page), not a verdict on "
        "any film."
    )
    xrays = window["verdict"] != "withheld"
    left, right = st.columns(2)
    left.plotly_chart(
        reference_and_answered(
            "Feature distance", distances, window["distance"][xrays].astype(float), "distance to the training films"
        ),
        width="stretch",
    )
    right.plotly_chart(
        reference_and_answered("Model score", logits, window["logit"][xrays].astype(float), "logit"), width="stretch"
    )
    if withheld := drift["withheld_left_out"]:
        st.caption(f"{withheld} film(s) withheld as not an X-ray are counted apart: not in the signals or these histograms.")


def model_comparison(champion: Path, challenger: Path) -> pd.DataFrame:
    """Internal test and the champion's active site, for both models, side by side."""
    site = active_profile(champion)
    rows = []
    for role, directory in (("champion", champion), ("challenger", challenger)):
        metadata = read_metadata(directory)
        row = {"model": f"{role}: {metadata.get('name')}"}
        test = metadata.get("metrics", {}).get("test", {})
        row.update({f"internal test {k}": test.get(k) for k in ("roc_auc", "sensitivity", "specificity")})
        if site is not None:
            try:
                metrics = load_profile(directory, site.name).metrics
            except ProfileError:
                metrics = {}
            row.update({f"site {site.name} {k}": metrics.get(k) for k in ("roc_auc", "sensitivity", "specificity")})
        rows.append(row)
    return pd.DataFrame(rows).round(3)


def shadow_section(served: Served, shadow: Shadow | None, since: float | None) -> None:
    st.subheader("Shadow challenger")
    if shadow is None:
        st.caption(
            "No challenger is scoring in the shadow. Set `PNEUMO_CHALLENGER` to a model directory or to "
            "`models:/pneumo-densenet121@challenger` (name the version with `python -m pneumo_core challenger VERSION`): "
            "it then scores every answered film beside the served model, in the background, and is never shown."
        )
        return
    report = shadow_report(since, served.metadata.get("model_sha256"), challenger_sha256=shadow.sha256)
    st.markdown(f"**{shadow.name}** scores every answered film beside the served model; its answers are never shown.")
    columns = st.columns(4)
    columns[0].metric("films scored", report.answers)
    columns[1].metric("agreement", "–" if report.agreement is None else f"{report.agreement:.1%}")
    columns[2].metric("median latency", "–" if report.answers == 0 else f"{report.challenger_latency_ms:.0f} ms")
    columns[3].metric("batches dropped (busy)", shadow.dropped)
    if report.answers:
        st.dataframe(
            pd.DataFrame([{"served → challenger": pair, "films": n} for pair, n in report.pairs.items()]), hide_index=True
        )
        if report.disagreements:
            champion, challenger = zip(*report.disagreements)
            st.plotly_chart(disagreements(champion, challenger), width="stretch")
        st.caption(
            f"Median latency per film: served {report.champion_latency_ms:.0f} ms, challenger "
            f"{report.challenger_latency_ms:.0f} ms (the challenger's is spent after the answer is given)."
        )
    st.dataframe(model_comparison(served.directory, shadow.directory), hide_index=True)
    ready, reasons = promotion_check(served.directory, shadow.directory, report)
    st.markdown("**Promotion rule** (all must hold):\n" + "\n".join(f"- {reason}" for reason in reasons))
    st.caption(
        f"The rule: at least {MIN_SHADOW_ANSWERS} films scored in the shadow, and the serving rule passed against the "
        f"served model: {SERVING_RULE}. A difference inside the site sample's noise is no reason to change the served model."
    )
    if ready and st.button("Promote the challenger", type="primary", key="promote_challenger"):
        promote_model(shadow.directory)
        st.success("The challenger is now the served model; the previous one is kept for roll-back.")


st.title("Monitoring")
st.markdown(
    "Every film answered by this app or the REST API leaves one row: time, model, operating point, verdict, "
    "probability, warnings, feature distance, two image statistics and latency. No image, file name or DICOM field "
    f"is stored; rows older than {monitor_settings().monitor_retention_days:.0f} days are deleted."
)
if not is_operator():  # it summarises every visitor's answers
    st.stop()
served = served_model_or_stop()
choice = st.radio("Window", list(WINDOWS), horizontal=True, key="monitor_window")
try:
    window, others = model_window(parse_since(WINDOWS[choice]), served.metadata.get("model_sha256"))
except StoreError as error:
    st.error(f"{error} Answers are still given; they are not recorded until the store is back.")
    st.stop()
distances, logits = validation_reference(served.directory)
report = drift_report(window, distances, logits)
st.markdown(
    f"**{counted(report['answers'], 'answer')}** by **{served.metadata.get('name')}** in {choice} "
    f"(decisions: {', '.join(f'{count} {name}' for name, count in report['decisions'].items())}; "
    f"{report['verdicts']['withheld']} withheld as not an X-ray)" + (f"; {others} more by other models." if others else ".")
)
if report["answers"] == 0:
    st.info(f"Nothing answered in this window yet. Store: `{describe()}`.")
    st.stop()
volume_and_decisions(window)
drift_section(report, window, distances, logits)
latency = window["latency_ms"].astype(float)
st.caption(
    f"Latency per film: median {np.median(latency):.0f} ms, 95th percentile {np.percentile(latency, 95):.0f} ms. "
    f"Report as of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; the same as JSON: `python -m pneumo_core monitor --json`."
)
shadow_section(served, shadow_challenger(), parse_since(WINDOWS[choice]))
