"""Model card: the static card (MODEL_CARD.md) with the served model's own numbers filled in from its metadata."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from pneumo_core.config import PROJECT_ROOT
from pneumo_core.metrics import CI_METRICS
from pneumo_core.registry import EVALUATION_DIR, SANITY_FILE
from pneumo_core.site import list_profiles, load_profile
from ui.resources import served_model
from ui.site_charts import comparison_table
from ui.widgets import operating_point_label

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
        + (
            "**LiteRT** (its TFLite copy; same outputs as TensorFlow within 1e-4, checked by the tests)"
            if served.predictor.runtime == "tflite"
            else "**TensorFlow**"
        )
    )
    profiles = [load_profile(served.directory, name) for name in list_profiles(served.directory)]
    st.markdown(f"**Operating point in use: {operating_point_label(served.predictor.operating_point)}.**")
    st.dataframe(comparison_table(meta, profiles, served.predictor.operating_point), hide_index=True, width="stretch")
    st.caption(
        "External first: a site row is measured on films from a later collection than the training data; its "
        "profile's threshold was fitted on those same films, so it is optimistic for that site's future films."
        if profiles
        else "No external site profile yet: these are internal numbers (same hospital and period as the training data)."
    )
    rows = []
    for split, title in (("val", "validation (used for threshold and calibration)"), ("test", "internal test (never tuned on)")):
        values = meta.get("metrics", {}).get(split, {})
        intervals = meta.get("confidence_intervals", {}).get(split, {})
        rows.append(
            {
                "split": title,
                "n": values.get("n"),
                **{
                    name: f"{values[name]:.3f}"
                    + (f" ({intervals[name][0]:.3f}–{intervals[name][1]:.3f})" if name in intervals else "")
                    for name in CI_METRICS
                    if name in values
                },
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(
        f"Threshold {meta.get('threshold', 0):.3f}: {meta.get('threshold_rule', 'not recorded')}. Calibration temperature "
        f"{meta.get('temperature', 1):.3f} fitted on validation. Brackets: 95% bootstrap intervals."
    )
    sanity_file = served.directory / EVALUATION_DIR / SANITY_FILE
    if sanity_file.is_file():
        sanity = json.loads(sanity_file.read_text())
        st.markdown(
            f"**Saliency sanity check** (Adebayo et al. 2018) on {sanity['images']} internal-test images: rank correlation "
            "of each Grad-CAM with the trained model's map as the network's weights are re-initialised from the top."
        )
        st.dataframe(pd.DataFrame(sanity["stages"]).drop(columns="images"), hide_index=True, width="stretch")
st.markdown((PROJECT_ROOT / "MODEL_CARD.md").read_text())
