"""Heavy objects loaded once per server process (``st.cache_resource``) and warmed up."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
from streamlit.runtime.scriptrunner import script_runner

from pneumo_core.config import served_model_dir
from pneumo_core.explain import Explainer
from pneumo_core.predict import Predictor
from pneumo_core.preprocess import CANONICAL_SIZE
from pneumo_core.registry import ModelLoadError, read_metadata


@dataclass(frozen=True)
class Served:
    predictor: Predictor
    explainer: Explainer
    directory: Path

    @property
    def metadata(self) -> dict:
        return self.predictor.metadata


@st.cache_resource(show_spinner="Loading the model…", max_entries=2)
def _load(directory: str, model_sha256: str) -> Served:
    """Load and warm up; keyed by the file's hash so a promoted model is picked up."""
    predictor = Predictor.load(Path(directory))
    explainer = Explainer(predictor.model, predictor.input_size)
    explainer.forward_with_gradcam(np.zeros((1, CANONICAL_SIZE, CANONICAL_SIZE), np.uint8))  # the app's only compiled path
    return Served(predictor, explainer, Path(directory))


def keep_compiled_functions() -> None:
    """Stop Streamlit from emptying TensorFlow's kernel cache after every script run.

    Streamlit's script runner calls ``keras.backend.clear_session()`` after each run
    (``streamlit.runtime.scriptrunner.script_runner._clean_problem_modules``), which makes
    the next call of every compiled function re-optimise its graph: about a second per
    click here, for a model that never changes. This app builds no Keras models per run
    and uses no pyplot figures (the only state that clean-up frees), so it is skipped.
    """
    script_runner._clean_problem_modules = _keep_state


def _keep_state() -> None:
    """Nothing to clean between runs: models live in ``st.cache_resource``."""


def served_model() -> tuple[Served | None, str | None]:
    """The served model, or (None, a plain reason) when it is missing or damaged."""
    directory = served_model_dir()
    try:
        return _load(str(directory), read_metadata(directory)["model_sha256"]), None
    except (ModelLoadError, KeyError, OSError, ValueError) as error:
        return None, str(error)
