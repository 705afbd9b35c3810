"""Heavy objects loaded once per server process (``st.cache_resource``) and warmed up."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import streamlit as st
from streamlit.logger import get_logger
from streamlit.runtime.scriptrunner import script_runner

from pneumo_core.config import serving_settings
from pneumo_core.jobs.history import recent_runs
from pneumo_core.operations.shadow import Shadow, load_shadow
from pneumo_core.serving.predictor import Predictor
from pneumo_core.store.mlflow_registry import serving_directory
from pneumo_core.store.model_dir import ModelLoadError, read_metadata
from pneumo_core.store.profiles import active_profile

log = get_logger(__name__)  # Streamlit's handler: the server log shows load times (never anything about uploads)


@dataclass(frozen=True)
class Served:
    predictor: Predictor
    directory: Path

    @property
    def metadata(self) -> dict:
        return self.predictor.metadata


_LOADER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader")


def _load(directory: Path) -> Served:
    started = time.perf_counter()
    predictor = Predictor.load(directory, runtime=serving_settings().runtime)
    loaded = time.perf_counter()
    predictor.warm_up()  # the serving graph answers and explains: the app's only path for a first answer
    log.info(
        "model %s loaded in %.2f s on %s, warmed in %.2f s",
        predictor.metadata.get("name"),
        loaded - started,
        predictor.runtime,
        time.perf_counter() - loaded,
    )
    return Served(predictor, directory)


@st.cache_resource(show_spinner=False, max_entries=2)
def _loading(directory: str, model_sha256: str, operating_point: str) -> Future:
    """Load and warm up in the background, once per model file and operating point (keyed by both, so a promotion
    or a site-profile activation is picked up): pages paint, and visitors choose their files, while the model loads."""
    return _LOADER.submit(_load, Path(directory))


@st.cache_resource(show_spinner=False)
def warm_training_history() -> Future:
    """MLflow imported and its store opened once per server process, in the background (about 1.5 s that a first
    visit to the Metrics page, which lists the training runs, would otherwise wait for)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="history-warm-up").submit(recent_runs, 1)


@st.cache_resource(show_spinner=False, max_entries=1)
def _shadow_loading(spec: str) -> Future:
    return _LOADER.submit(load_shadow, serving_settings().runtime)


def shadow_challenger() -> Shadow | None:
    """The shadow challenger ``$PNEUMO_CHALLENGER`` names, once it has loaded in the background (None until then,
    and when none is set): answers never wait for it."""
    spec = serving_settings().challenger
    if not spec:
        return None
    future = _shadow_loading(spec)
    return future.result() if future.done() else None


class Loading(NamedTuple):
    future: Future | None  # None when there is no usable model
    model_name: str | None
    problem: str | None  # a plain reason when there is no usable model
    operating_point: str | None = None  # "validation" or "site:NAME"


def start_loading() -> Loading:
    """Start loading the served model without waiting (its metadata and active profile are read once per call, which
    also spots a promotion or an activation)."""
    try:
        directory = serving_directory()
        metadata = read_metadata(directory)
        profile = active_profile(directory)
        point = profile.operating_point if profile else "validation"
        future = _loading(str(directory), metadata["model_sha256"], point)
        return Loading(future, metadata.get("name", "unnamed"), None, point)
    except (ModelLoadError, KeyError, OSError, ValueError) as error:
        return Loading(None, None, str(error))


def served_model_or_stop() -> Served:
    """The served model for a page that shows nothing without one: otherwise the reason, and the page stops."""
    served, problem = served_model()
    if served is None:
        st.error(f"No model is available. {problem}")
        st.stop()
    return served


def served_model(loading: Loading | None = None) -> tuple[Served | None, str | None]:
    """The served model, loaded and warmed (waits for it), or (None, a plain reason); pass the ``loading`` this
    run already started, if any."""
    future, _, problem, _ = loading or start_loading()
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
