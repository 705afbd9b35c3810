"""Every setting in one place: locations, runtime choices, operator access, training switches.

Each setting has a default relative to the project root and an environment variable
that overrides it (docs/configuration.md lists them all), so the app, the CLI,
the API, CI and the tests agree. Secrets may also come from ``.streamlit/secrets.toml``
(``[operator] password``, ``[training] enabled``); environment variables win.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DATA_DIR_ENV = "PNEUMO_DATA_DIR"
DATA_ROOTS_ENV = "PNEUMO_DATA_ROOTS"
MODEL_DIR_ENV = "PNEUMO_MODEL_DIR"
MODEL_URI_ENV = "PNEUMO_MODEL_URI"
RUNS_DIR_ENV = "PNEUMO_RUNS_DIR"
PROFILES_DIR_ENV = "PNEUMO_PROFILES_DIR"
RUNTIME_ENV = "PNEUMO_RUNTIME"
LITE_THREADS_ENV = "PNEUMO_LITE_THREADS"
BASE_WEIGHTS_ENV = "PNEUMO_BASE_WEIGHTS"
BASE_WEIGHTS_FILE_ENV = "PNEUMO_BASE_WEIGHTS_FILE"
TRAINING_ENV = "PNEUMO_TRAINING"
OPERATOR_PASSWORD_ENV = "PNEUMO_OPERATOR_PASSWORD"
PUBLIC_ENV = "PNEUMO_PUBLIC"
SECRETS_FILE_ENV = "PNEUMO_SECRETS_FILE"
API_KEYS_ENV = "PNEUMO_API_KEYS"
API_AUTH_ENV = "PNEUMO_API_AUTH"
API_RATE_ENV = "PNEUMO_API_RATE"
API_RATE_STORAGE_ENV = "PNEUMO_API_RATE_STORAGE"
MLFLOW_URI_ENV = "MLFLOW_TRACKING_URI"
CLUSTER_ENV = "TF_CONFIG"
CHALLENGER_ENV = "PNEUMO_CHALLENGER"
TRAIN_MEMORY_ENV = "PNEUMO_TRAIN_MEMORY_MB"
MONITOR_DB_ENV = "PNEUMO_MONITOR_DB"
MONITOR_RETENTION_ENV = "PNEUMO_MONITOR_RETENTION_DAYS"
TF_LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"

TENSORFLOW_LOG_LEVEL = "2"
"""TensorFlow's C++ log level at every entry point unless ``$TF_CPP_MIN_LOG_LEVEL`` is set: info and warnings
hidden, errors kept."""
DECODE_THREADS = 2
"""Threads decoding the next batch of uploads while the model answers the current one (this machine's 2 cores)."""
FILE_LOADING_THREADS = 4
"""Threads decoding files from disk for training and the Metrics page (reading waits on the disk as much as the CPU)."""

MAX_FILES_PER_REQUEST = 12
"""Films answered at once by the app's Classify page and by one REST API request."""

MLFLOW_EXPERIMENT = "pneumo"
"""The MLflow experiment every training run logs to (``train.py --experiment`` can change it)."""
REGISTERED_MODEL = "pneumo-densenet121"
"""The MLflow registered model every finished run's model becomes a version of."""

_OFF = ("off", "0", "false", "no", "disabled")
_ON = ("on", "1", "true", "yes", "enabled")


class SettingError(ValueError):
    """An environment variable holds a value its setting cannot take; the message names the variable and the values
    it may take. Raised when the setting is read, and by :func:`check_settings` at each entry point's start."""


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = os.environ.get(name, default).strip().lower()
    if value not in allowed:
        raise SettingError(f"{name}={os.environ[name]!r} is not a setting: use one of {', '.join(allowed)}.")
    return value


def _number(name: str, default: float, minimum: float, kind: type = float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = kind(raw.strip())
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a number: give a {kind.__name__} of at least {minimum:g}.") from None
    if value < minimum:
        raise SettingError(f"{name}={raw!r} is too small: give a {kind.__name__} of at least {minimum:g}.")
    return value


def _switch(name: str) -> bool | None:
    """``on`` / ``off`` (and their usual spellings) of ``$name``, None when unset."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return None
    return _choice(name, "", _ON + _OFF) in _ON


# Tried in order when PNEUMO_DATA_DIR is not set: the project's own data folder,
# then the shared copy used in development and CI.
_DEFAULT_DATA_DIRS = (PROJECT_ROOT / "data" / "chest_xray", PROJECT_ROOT.parent / "shared" / "data" / "chest_xray")


def quiet_tensorflow() -> None:
    """Set TensorFlow's log level (:data:`TENSORFLOW_LOG_LEVEL`) before it is imported, unless the environment chose."""
    os.environ.setdefault(TF_LOG_LEVEL_ENV, TENSORFLOW_LOG_LEVEL)


def portable_path(path: str | Path | None) -> str | None:
    """A path as it may be recorded in committed files: relative to the project (or to its parent, as for
    ``../shared/data``), else only its last part; never the absolute path of the machine that wrote it."""
    if path is None:
        return None
    resolved = Path(path).resolve()
    for base, prefix in ((PROJECT_ROOT, ""), (PROJECT_ROOT.parent, "../")):
        if resolved.is_relative_to(base):
            return prefix + str(resolved.relative_to(base))
    return resolved.name


def default_data_dir() -> Path:
    """The Kermany-layout data folder: ``$PNEUMO_DATA_DIR`` or the first default that exists."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    for candidate in _DEFAULT_DATA_DIRS:
        if candidate.is_dir():
            return candidate
    return _DEFAULT_DATA_DIRS[0]


def site_sample_dir(data_dir: Path | None = None) -> Path:
    """The labelled site sample beside the training split (``DATA_DIR/site_sample``): films of the later collection
    to measure, calibrate and select on, never to train on."""
    return Path(data_dir or default_data_dir()) / "site_sample"


def training_data_roots() -> list[Path]:
    """The only folders the app may read labelled data from: ``$PNEUMO_DATA_ROOTS`` (``os.pathsep``-separated) or the
    default data folder, those that exist. The app offers these by name; it never takes a path typed by a visitor."""
    configured = os.environ.get(DATA_ROOTS_ENV)
    roots = [Path(p) for p in configured.split(os.pathsep) if p] if configured else [default_data_dir()]
    return [root.resolve() for root in roots if root.is_dir()]


def served_model_dir() -> Path:
    """The directory of the model the app and the CLI serve."""
    return Path(os.environ.get(MODEL_DIR_ENV, PROJECT_ROOT / "models" / "served"))


def model_uri() -> str | None:
    """``$PNEUMO_MODEL_URI``: serve a registered version (``models:/pneumo-densenet121@champion`` or ``.../3``)
    instead of the served model directory."""
    return os.environ.get(MODEL_URI_ENV) or None


def challenger_spec() -> str | None:
    """``$PNEUMO_CHALLENGER``: a model directory or registry URI (``models:/pneumo-densenet121@challenger``) to score
    every answered film in the shadow of the served one."""
    return os.environ.get(CHALLENGER_ENV) or None


def runs_dir() -> Path:
    """Where training runs keep checkpoints, progress files and candidate models (not in git)."""
    return Path(os.environ.get(RUNS_DIR_ENV, PROJECT_ROOT / "runs"))


def profiles_root() -> Path | None:
    """``$PNEUMO_PROFILES_DIR``: a writable folder for site profiles when the model directory is read-only (the
    container image); unset, each model keeps its profiles in its own directory."""
    value = os.environ.get(PROFILES_DIR_ENV)
    return Path(value) if value else None


def audit_log_path() -> Path:
    """The operator-action log (:mod:`pneumo_core.operations.audit`), beside the runs."""
    return runs_dir() / "operator_actions.jsonl"


def train_memory_budget_bytes() -> int:
    """How much decoded training data may stay in memory (``$PNEUMO_TRAIN_MEMORY_MB``; default a quarter of the
    memory available now); a larger data set is streamed from its files."""
    if os.environ.get(TRAIN_MEMORY_ENV, "").strip():
        return int(_number(TRAIN_MEMORY_ENV, 0.0, 0.0) * 2**20)
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        return int(fields["MemAvailable"].split()[0]) * 1024 // 4
    except (OSError, KeyError, ValueError):
        return 2 * 2**30


def monitor_store() -> str:
    """The monitoring store (:mod:`pneumo_core.operations.answer_store`; one row per answered film, nothing
    identifying): ``$PNEUMO_MONITOR_DB``, a SQLite file path or a database URL, default ``runs/monitor.db``."""
    return os.environ.get(MONITOR_DB_ENV) or str(runs_dir() / "monitor.db")


def is_database_url(location: str) -> bool:
    """True for a database URL (``postgresql://...``), False for a file path."""
    return "://" in location


def monitor_retention_days() -> float:
    """Rows older than this are deleted (``$PNEUMO_MONITOR_RETENTION_DAYS``, default 90; 0 keeps everything)."""
    return _number(MONITOR_RETENTION_ENV, 90.0, 0.0)


def cluster_spec() -> str | None:
    """``$TF_CONFIG``: TensorFlow's description of a training cluster and this process's task in it, if set."""
    return os.environ.get(CLUSTER_ENV) or None


def mlflow_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` or a SQLite file in the project root."""
    return os.environ.get(MLFLOW_URI_ENV, f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}")


def default_base_weights() -> str:
    """``$PNEUMO_BASE_WEIGHTS`` or ``auto`` (see :func:`pneumo_core.modeling.architectures.resolve_base_weights`)."""
    return os.environ.get(BASE_WEIGHTS_ENV, "auto")


def base_weights_file() -> Path | None:
    """A local DenseNet121 weights file for ``--base-weights auto`` (``$PNEUMO_BASE_WEIGHTS_FILE``), if set."""
    value = os.environ.get(BASE_WEIGHTS_FILE_ENV)
    return Path(value) if value else None


SERVING_RUNTIMES = ("auto", "tflite-int8", "tflite", "tensorflow")
"""The runtime names (:data:`pneumo_core.serving.runtimes.RUNTIMES` says what ``auto`` stands for)."""


def serving_runtime() -> str:
    """``$PNEUMO_RUNTIME``: ``auto`` (default: see :data:`pneumo_core.serving.runtimes.RUNTIMES`), ``tflite-int8``, ``tflite``
    or ``tensorflow``."""
    return _choice(RUNTIME_ENV, "auto", SERVING_RUNTIMES)


def lite_threads() -> int:
    """Threads of the LiteRT interpreter (``$PNEUMO_LITE_THREADS``, default 2: this machine's cores)."""
    return int(_number(LITE_THREADS_ENV, 2, 1, int))


def secrets() -> dict[str, Any]:
    """``.streamlit/secrets.toml`` (or ``$PNEUMO_SECRETS_FILE``) as a dict; empty when absent or unreadable."""
    path = Path(os.environ.get(SECRETS_FILE_ENV, PROJECT_ROOT / ".streamlit" / "secrets.toml"))
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def operator_password() -> str | None:
    """``$PNEUMO_OPERATOR_PASSWORD``, else ``[operator] password`` in the secrets file; None when neither is set."""
    value = os.environ.get(OPERATOR_PASSWORD_ENV) or secrets().get("operator", {}).get("password")
    return str(value) if value else None


def marked_public() -> bool:
    """``$PNEUMO_PUBLIC=1``: others reach this server (e.g. through a reverse proxy on this machine), so a
    loopback bind address does not make it private."""
    return bool(_switch(PUBLIC_ENV))


def training_enabled() -> bool:
    """Off with ``$PNEUMO_TRAINING=off`` or ``[training] enabled = false`` in the secrets file (a public demo)."""
    value = _switch(TRAINING_ENV)
    if value is not None:
        return value
    return bool(secrets().get("training", {}).get("enabled", True))


def api_keys() -> list[str]:
    """REST API keys: ``$PNEUMO_API_KEYS`` (comma-separated) or ``[api] keys = [...]`` in the secrets file."""
    value = os.environ.get(API_KEYS_ENV)
    keys = value.split(",") if value else secrets().get("api", {}).get("keys", [])
    return [str(key).strip() for key in keys if str(key).strip()]


def api_auth() -> str:
    """``$PNEUMO_API_AUTH``: ``auto`` (default: a key is needed unless no key is set and the request is local),
    ``on`` (always) or ``off`` (never: only behind something that authenticates)."""
    return _choice(API_AUTH_ENV, "auto", ("auto", "on", "off"))


def api_rate() -> str:
    """Per-client request limit of the REST API, in the ``limits`` notation (``$PNEUMO_API_RATE``, default 120/minute)."""
    return os.environ.get(API_RATE_ENV, "120/minute")


def api_rate_storage() -> str:
    """Where the REST API counts its rate limits, as a ``limits`` storage URI (``$PNEUMO_API_RATE_STORAGE``):
    ``memory://`` (the default: this process only) or ``redis://host:port`` (one limit shared by every replica)."""
    return os.environ.get(API_RATE_STORAGE_ENV) or "memory://"


SETTINGS: tuple[Callable[[], object], ...] = (
    train_memory_budget_bytes,
    monitor_retention_days,
    serving_runtime,
    lite_threads,
    marked_public,
    training_enabled,
    api_auth,
)
"""The settings whose environment variable can hold a wrong value, each read (and so checked) by :func:`check_settings`."""


def check_settings() -> None:
    """Read every setting once: the first wrong value stops the entry point with a :class:`SettingError` naming its
    variable (the app, the REST API and the command line call this first)."""
    problems = []
    for setting in SETTINGS:
        try:
            setting()
        except SettingError as error:
            problems.append(str(error))
    if problems:
        raise SettingError(" ".join(problems))
