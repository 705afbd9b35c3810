"""Model card: the static card (MODEL_CARD.md) with the served model's own numbers filled in from its metadata."""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from pneumo_core.config import PROJECT_ROOT
from pneumo_core.evaluation.int8_check import describe_check
from pneumo_core.evaluation.metrics import CI_METRICS
from pneumo_core.store.model_dir import EVALUATION_DIR
from pneumo_core.store.profiles import list_profiles, load_profile
from ui.resources import served_model
from ui.site_tables import PLAIN_NAMES, comparison_table
from ui.widgets import operating_point_label

RUNTIME_DESCRIPTIONS = {
    "tflite-int8": "**LiteRT**, its TFLite copy with int8 weights (served because it changes no answer that matters)",
    "tflite": "**LiteRT** (its TFLite copy; same outputs as TensorFlow within 1e-4, checked by the tests)",
    "tensorflow": "**TensorFlow**",
}

st.title("Model card")
served, problem = served_model()
if served is None:
    st.warning(f"No model is being served, so only the general card is shown. {problem}")
else:
    meta = served.metadata
    st.markdown(
        f"**{meta.get('name')}** · created {meta.get('created', '?')} from commit `{meta.get('git_commit', '?')}` · "
        f"recipe **{meta.get('recipe')}** · base weights **{meta.get('base_weights')}** · input {meta.get('input_size')} px · "
        f"trained in {meta.get('train_seconds', 0) / 60:.0f} min on 2 CPU cores · served by "
        + RUNTIME_DESCRIPTIONS[served.predictor.runtime]
    )
    if served.predictor.runtime == "tflite-int8":
        st.caption(f"The int8 copy against float32 at the operating point in use — {describe_check(meta)}.")
    profiles = [load_profile(served.directory, name) for name in list_profiles(served.directory)]
    st.markdown(f"**Operating point in use: {operating_point_label(served.predictor.operating_point)}.**")
    internal_path = served.directory / EVALUATION_DIR / "test_predictions.csv"
    internal = pd.read_csv(internal_path) if internal_path.is_file() else None
    st.dataframe(comparison_table(meta, profiles, served.predictor.operating_point, internal), hide_index=True, width="stretch")
    st.caption(
        "External first: a site row is measured on films from a later collection than the training data; its "
        "profile's threshold was fitted on those same films, so it is optimistic for that site's future films."
        if profiles
        else "No external site profile yet: these are internal numbers (same hospital and period as the training data)."
    )
    splits = {"val": "validation (threshold, calibration)", "test": "internal test (never tuned on)"}
    table = {}
    for split, title in splits.items():
        values = meta.get("metrics", {}).get(split, {})
        intervals = meta.get("confidence_intervals", {}).get(split, {})
        table[title] = {
            PLAIN_NAMES.get(name, name): f"{values[name]:.3f}"
            + (f" ({intervals[name][0]:.3f}–{intervals[name][1]:.3f})" if name in intervals else "")
            for name in CI_METRICS
            if name in values
        }
    st.dataframe(pd.DataFrame(table), width="stretch")  # one row per metric: fits any window
    st.caption(
        f"Validation threshold {meta.get('threshold', 0):.3f}: {meta.get('threshold_rule', 'not recorded')}. Calibration "
        f"temperature {meta.get('temperature', 1):.3f} fitted on validation. Brackets: 95% intervals by patient "
        "(exact for proportions, a patient bootstrap for the AUCs). The saliency "
        "sanity check's results are in the card below."
    )
card = (PROJECT_ROOT / "MODEL_CARD.md").read_text().split("\n", 1)[1]  # its title is the page's
st.markdown(re.sub(r"<!--.*?-->\n?", "", card, flags=re.S))  # the generated blocks' markers are not for readers
