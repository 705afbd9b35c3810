"""Heavy objects loaded once per server process (``st.cache_resource``) and warmed up."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import streamlit as st
from streamlit.logger import get_logger
from streamlit.runtime.scriptrunner import script_runner

from pneumo_core.config import served_model_dir
from pneumo_core.explain import Explainer
from pneumo_core.predict import Predictor
from pneumo_core.preprocess import CANONICAL_SIZE
from pneumo_core.registry import ModelLoadError, read_metadata

log = get_logger(__name__)  # Streamlit's handler: the server log shows load times (never anything about uploads)


@dataclass(frozen=True)
class Served:
    predictor: Predictor
    explainer: Explainer
    directory: Path

    @property
    def metadata(self) -> dict:
        return self.predictor.metadata


_LOADER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader")


def _load(directory: Path) -> Served:
    started = time.perf_counter()
    predictor = Predictor.load(directory)
    explainer = Explainer(predictor.model, predictor.input_size)
    loaded = time.perf_counter()
    explainer.forward_with_gradcam(np.zeros((1, CANONICAL_SIZE, CANONICAL_SIZE), np.uint8))  # the app's only compiled path
    log.info("model %s loaded in %.1f s, compiled and warmed in %.1f s", predictor.metadata.get("name"),
             loaded - started, time.perf_counter() - loaded)
    return Served(predictor, explainer, directory)


@st.cache_resource(show_spinner=False, max_entries=2)
def _loading(directory: str, model_sha256: str) -> Future:
    """Load and warm up in the background, once per model file (keyed by its hash, so a promotion is picked up):
    pages paint, and visitors choose their files, while the model loads."""
    return _LOADER.submit(_load, Path(directory))


class Loading(NamedTuple):
    future: Future | None  # None when there is no usable model
    model_name: str | None
    problem: str | None  # a plain reason when there is no usable model


def start_loading() -> Loading:
    """Start loading the served model without waiting (its metadata is read once per call, which also spots a promotion)."""
    directory = served_model_dir()
    try:
        metadata = read_metadata(directory)
        return Loading(_loading(str(directory), metadata["model_sha256"]), metadata.get("name", "unnamed"), None)
    except (ModelLoadError, KeyError, OSError, ValueError) as error:
        return Loading(None, None, str(error))


def served_model() -> tuple[Served | None, str | None]:
    """The served model, loaded and warmed (waits for it), or (None, a plain reason)."""
    future, _, problem = start_loading()
    if future is None:
        return None, problem
    if not future.done():
        with st.spinner("Loading the model…"):
            wait([future])
    try:
        return future.result(), None
    except (ModelLoadError, KeyError, OSError, ValueError) as error:
        _loading.clear()  # try again on the next run, e.g. after the file is fixed
        return None, str(error)


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


