"""Everything the app does that changes what is served or starts a process, behind the operator gate.

Each action checks the role itself (:func:`ui.operator_gate.require_operator`), so no page can
call it for a viewer by mistake, and records its outcome in the operator-action log.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pneumo_core.evaluation.scoring import score_labelled_folder
from pneumo_core.jobs.launcher import Job, cancel_job, start_job
from pneumo_core.operating_point.calibration import calibrate
from pneumo_core.operating_point.rules import ReferralRule, Rule
from pneumo_core.operating_point.samples import sample_from_folder
from pneumo_core.operations.audit import record_action
from pneumo_core.operations.promotion import promote_candidate, roll_back_served
from pneumo_core.serving.predictor import Predictor
from pneumo_core.store.mlflow_registry import serving_directory
from pneumo_core.store.profiles import SiteProfile, activate, save_profile
from ui.operator_gate import require_operator


def start_training(train_args: list[str]) -> Job:
    actor = require_operator()
    try:
        job = start_job(train_args)
    except Exception as error:
        record_action("start training", "-", f"refused: {error}", actor)
        raise
    record_action("start training", job.run_name, "started", actor, pid=job.pid)
    return job


def cancel_training(job: Job) -> str:
    """Stop the job (within seconds, see :func:`~pneumo_core.jobs.launcher.cancel_job`); its final state."""
    actor = require_operator()
    state = cancel_job(job).state
    record_action("cancel training", job.run_name, state, actor)
    return state


def promote_model(candidate: Path) -> None:
    actor = require_operator()
    promote_candidate(candidate, actor)
    st.cache_resource.clear()


def roll_back_model() -> None:
    actor = require_operator()
    roll_back_served(actor)
    st.cache_resource.clear()


def validate_site(predictor: Predictor, folder: Path, name: str, rule: str, band_rule: str, progress) -> SiteProfile:
    """Score a labelled folder and fit a site profile (not saved): minutes of CPU, so operators only."""
    require_operator()
    scores = score_labelled_folder(predictor, folder, progress)
    reference = predictor.density.reference if predictor.density else None
    sample = sample_from_folder(scores)
    return calibrate(
        sample, predictor.metadata, name, Rule.parse(rule), ReferralRule.parse(band_rule), reference, predictor.runtime
    )


def save_site_profile(profile: SiteProfile, make_active: bool) -> None:
    actor = require_operator()
    save_profile(profile, serving_directory())  # where the served model is, a registry version's copy included
    outcome = "saved"
    if make_active:
        activate(serving_directory(), profile.name)
        st.cache_resource.clear()
        outcome = "saved and activated"
    record_action("site profile", profile.name, outcome, actor, rule=profile.rule, n=profile.n, threshold=profile.threshold)


def deactivate_site_profiles() -> None:
    actor = require_operator()
    activate(serving_directory(), None)
    st.cache_resource.clear()
    record_action("site profile", "-", "deactivated: validation threshold", actor)
