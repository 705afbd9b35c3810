"""Site profiles (operators): validate the served model on a site's own labelled films and fit, save or activate the
site's operating point. Everyone else sees what this page is for."""

from __future__ import annotations

import streamlit as st

from pneumo_core.common.films import labelled_folders
from pneumo_core.config import locations
from pneumo_core.operating_point.rules import DEFAULT_BAND, DEFAULT_RULE
from pneumo_core.store.profiles import ProfileError, SiteProfile
from pneumo_core.visualize.distributions import distance_histograms, probability_histograms
from ui.operator_actions import deactivate_site_profiles, save_site_profile, validate_site
from ui.operator_gate import is_operator
from ui.resources import Served, served_model_or_stop
from ui.site_tables import comparison_table, referral_table
from ui.widgets import promise_table_words

RULES = {
    DEFAULT_RULE: "the highest threshold whose promised sensitivity on the next films is at least 0.90 (recommended)",
    "sensitivity-bound:0.92": "the same, promising at least 0.92 (a lower threshold: more films called PNEUMONIA)",
    "sensitivity:0.97": "the sample's own sensitivity at least 0.97 (optimistic: promises only what its bounds say)",
    "cost:10": "a missed pneumonia costs 10 false alarms",
    "youden": "maximise sensitivity + specificity",
}
BANDS = {
    DEFAULT_BAND: "NORMAL only where at most 8% of next pneumonia films fall, PNEUMONIA where at most 15% of normal films do "
    "(recommended)",
    "band:0.92/0.9": "the same NORMAL edge, PNEUMONIA only where at most 10% of normal films fall (refers more)",
    "band:none": "no referral: every film gets the binary call",
}


def validate_on_your_data(served: Served) -> None:
    """Operators: score a labelled folder from the data roots, see its shift diagnostics, save or activate a profile."""
    st.subheader("Validate on your data")
    st.markdown(
        "A site's own labelled films (a `NORMAL/` and a `PNEUMONIA/` folder under the configured data roots) show how the "
        "model does there and fit the site's operating point. Nothing is stored but the profile's aggregates."
    )
    if not is_operator():
        return
    folders = labelled_folders(locations().training_data_roots)
    if not folders:
        st.info("No labelled folder under the configured data roots (PNEUMO_DATA_ROOTS).")
        return
    active = served.predictor.operating_point
    if active.startswith("site:") and st.button("Serve at the validation threshold again", key="deactivate_profile"):
        deactivate_site_profiles()
        st.rerun()
    with st.form("validate_form"):
        folder = st.selectbox("Labelled folder", folders, format_func=lambda p: f"{p.parent.name}/{p.name}")
        name = st.text_input("Site name", "site-sample", max_chars=64)
        rule = st.selectbox("Threshold rule", list(RULES), format_func=lambda r: f"{r}: {RULES[r]}")
        band_rule = st.selectbox("Referral band", list(BANDS), format_func=lambda b: f"{b}: {BANDS[b]}")
        submitted = st.form_submit_button("Validate", type="primary")
    if submitted:
        bar = st.progress(0.0, text="Scoring films…")
        try:
            st.session_state["site_result"] = validate_site(
                served.predictor,
                folder,
                name,
                rule,
                band_rule,
                lambda done, total: bar.progress(done / total, f"{done}/{total} films"),
            )
        except (ProfileError, FileNotFoundError) as error:
            st.error(str(error))
        bar.empty()
    profile = st.session_state.get("site_result")
    if profile is None:
        return
    site_result(served, profile)


def site_result(served: Served, profile: SiteProfile) -> None:
    st.markdown(
        f"**Site {profile.name}**: {profile.n} films ({profile.n_normal} NORMAL, {profile.n_pneumonia} PNEUMONIA), "
        f"rule *{profile.rule_description}* → threshold **{profile.threshold:.3f}**, temperature {profile.temperature:.2f}."
        + (f" {profile.unreadable} file(s) could not be read." if profile.unreadable else "")
    )
    st.dataframe(comparison_table(served.metadata, [profile], ""), hide_index=True, width="stretch")
    st.caption(profile.note)
    if promised := promise_table_words(profile.promise):
        st.markdown(promised)
    for line in [*profile.shortfalls, *profile.notes]:
        st.info(line)
    st.dataframe(referral_table([profile]), hide_index=True, width="stretch")
    left, right = st.columns(2)
    left.plotly_chart(probability_histograms(profile), width="stretch", key="site_probabilities")
    limit = served.predictor.density.limit if served.predictor.density else None
    right.plotly_chart(distance_histograms(profile, limit), width="stretch", key="site_distances")
    warned = profile.diagnostics.get("not_an_xray_warnings", 0)
    st.caption(f"{warned} of {profile.n} films got a not-an-X-ray warning (feature distance above the limit).")
    save, save_active = st.columns(2)
    if save.button("Save profile", key="save_profile"):
        save_site_profile(profile, make_active=False)
        st.success(f"Saved site profile {profile.name}.")
    if save_active.button("Save and serve at this operating point", key="activate_profile", type="primary"):
        save_site_profile(profile, make_active=True)
        st.success(f"Every answer now uses site profile {profile.name} (threshold {profile.threshold:.3f}).")


def main() -> None:
    st.title("Site profiles")
    served = served_model_or_stop()
    validate_on_your_data(served)


main()
