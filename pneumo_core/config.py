"""Every setting in one place, read from the environment once and validated, split by the part that reads it.

Six groups, each a frozen ``pydantic-settings`` object with its own accessor: :func:`locations` (folders and
stores everyone shares), :func:`serving_settings` (the model and its runtime), :func:`monitor_settings`,
:func:`api_settings` (the REST API's keys and limits), :func:`access_settings` (who may do what) and
:func:`training_settings`. An environment variable overrides each
default (``docs/configuration.md`` lists them all, a test holds the list); a value a setting cannot take raises a
:class:`SettingError` that names the variable, and :func:`check_settings` reads every group at each entry point's
start so the app, the REST API, the command line and ``train.py`` stop before doing anything. The operator password,
the training switch and the API keys may also come from ``.streamlit/secrets.toml``; environment variables win.

An accessor builds its object once per state of the environment: a server's never changes, so it is read once;
a test that changes a variable gets the new value.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

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

REGISTRY_URI = re.compile(r"models:/(?P<name>[^/@]+)(@(?P<alias>[\w.-]+)|/(?P<version>\d+))")
"""A registered model version: ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``."""
SERVING_RUNTIMES = ("auto", "tflite-int8", "tflite", "tensorflow")
"""The runtime names (:data:`pneumo_core.serving.runtimes.RUNTIMES` says what ``auto`` stands for)."""

# Tried in order when PNEUMO_DATA_DIR is not set: the project's own data folder,
# then the shared copy used in development and CI.
_DEFAULT_DATA_DIRS = (PROJECT_ROOT / "data" / "chest_xray", PROJECT_ROOT.parent / "shared" / "data" / "chest_xray")


class SettingError(ValueError):
    """An environment variable holds a value its setting cannot take; the message names the variable and says what
    it may hold. Raised by an accessor, and by :func:`check_settings` at each entry point's start."""


class _Settings(BaseSettings):
    """Frozen settings from ``PNEUMO_*`` variables; choices are read case-insensitively."""

    model_config = SettingsConfigDict(env_prefix="PNEUMO_", frozen=True, extra="ignore")
    secrets: ClassVar[dict[str, tuple[str, str]]] = {}
    """Fields the secrets file may also set: field name -> (TOML section, key)."""

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable of ``field``."""
        alias = cls.model_fields[field].validation_alias
        return alias if isinstance(alias, str) else cls.model_config["env_prefix"] + field.upper()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _SecretsFile(settings_cls)


class _SecretsFile(PydanticBaseSettingsSource):
    """The fields a settings class names in ``secrets``, from ``.streamlit/secrets.toml`` (``$PNEUMO_SECRETS_FILE``);
    nothing when the file is absent or unreadable."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        wanted: dict[str, tuple[str, str]] = getattr(self.settings_cls, "secrets", {})
        if not wanted:
            return {}
        try:
            table = tomllib.loads(locations().secrets_file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            return {}
        found = {name: table.get(section, {}).get(key) for name, (section, key) in wanted.items()}
        return {name: value for name, value in found.items() if value is not None}


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _listed(separator: str, value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(separator) if part.strip())
    return value


class Locations(_Settings):
    """Folders and stores every part shares."""

    data_dir: Path = Field(default_factory=lambda: next((d for d in _DEFAULT_DATA_DIRS if d.is_dir()), _DEFAULT_DATA_DIRS[0]))
    """The Kermany-layout data folder: ``$PNEUMO_DATA_DIR`` or the first default that exists."""
    data_roots: Annotated[tuple[Path, ...], NoDecode] = ()
    """``$PNEUMO_DATA_ROOTS`` (``os.pathsep``-separated): the only folders the app may read labelled data from."""
    model_dir: Path = PROJECT_ROOT / "models" / "served"
    """The directory of the model the app, the API and the CLI serve."""
    runs_dir: Path = PROJECT_ROOT / "runs"
    """Training runs' checkpoints, progress files and candidate models (not in git)."""
    profiles_dir: Path | None = None
    """A writable folder for site profiles when the model directory is read-only (the container image); unset,
    each model keeps its profiles in its own directory."""
    secrets_file: Path = PROJECT_ROOT / ".streamlit" / "secrets.toml"
    mlflow_tracking_uri: str = Field(f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}", validation_alias="MLFLOW_TRACKING_URI")

    @field_validator("data_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        return _listed(os.pathsep, value)

    @property
    def training_data_roots(self) -> list[Path]:
        """The folders the app offers by name (it never takes a path typed by a visitor): the data roots, or the
        data folder, those that exist."""
        return [root.resolve() for root in self.data_roots or (self.data_dir,) if root.is_dir()]

    @property
    def audit_log(self) -> Path:
        """The operator-action log (:mod:`pneumo_core.operations.audit`), beside the runs."""
        return self.runs_dir / "operator_actions.jsonl"


class ServingSettings(_Settings):
    """Which model answers, and on which runtime."""

    runtime: Literal[SERVING_RUNTIMES] = "auto"  # type: ignore[valid-type]
    """``auto`` (see :data:`pneumo_core.serving.runtimes.RUNTIMES`), ``tflite-int8``, ``tflite`` or ``tensorflow``."""
    lite_threads: int = Field(2, ge=1)
    """Threads of the LiteRT interpreter (this machine's cores)."""
    model_uri: str | None = None
    """A registered version to serve instead of the model directory (``models:/pneumo-densenet121@champion``)."""
    challenger: str | None = None
    """A model directory or registry URI scored in the shadow of every answered film."""

    @field_validator("runtime", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return _lower(value)

    @field_validator("model_uri")
    @classmethod
    def _registry_uri(cls, value: str | None) -> str | None:
        if value and not REGISTRY_URI.fullmatch(value):
            raise ValueError("use models:/NAME@ALIAS or models:/NAME/VERSION")
        return value or None


class MonitorSettings(_Settings):
    """The monitoring store: one row per answered film, nothing identifying."""

    monitor_db: str | None = None
    """A SQLite file path or a database URL; unset, ``monitor.db`` in the runs folder."""
    monitor_retention_days: float = Field(90.0, ge=0)
    """Rows older than this are deleted (0 keeps everything)."""

    @property
    def store(self) -> str:
        """Where the rows live: the configured location or ``RUNS_DIR/monitor.db``."""
        return self.monitor_db or str(locations().runs_dir / "monitor.db")


class ApiSettings(_Settings):
    """The REST API's keys and limits."""

    model_config = SettingsConfigDict(env_prefix="PNEUMO_API_")
    secrets: ClassVar[dict[str, tuple[str, str]]] = {"keys": ("api", "keys")}

    keys: Annotated[tuple[str, ...], NoDecode] = ()
    """API keys (comma-separated), or ``[api] keys = [...]`` in the secrets file."""
    auth: Literal["auto", "on", "off"] = "auto"
    """``auto``: a key is needed unless no key is set and the request is local; ``on``: always; ``off``: never
    (only behind something that authenticates)."""
    rate: str = "120/minute"
    """Per-client request limit, in the ``limits`` notation."""
    rate_storage: str = Field("memory://", pattern=r"^(memory|redis|rediss|redis\+unix)://")
    """Where the limits are counted: ``memory://`` (this process) or ``redis://host:port`` (shared by replicas)."""

    @field_validator("auth", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return _lower(value)

    @field_validator("keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        return _listed(",", value) if isinstance(value, str) else tuple(str(key).strip() for key in value)

    @field_validator("rate")
    @classmethod
    def _parse_rate(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError("give a limit such as 120/minute or 10/second;1000/day") from None
        return value


class AccessSettings(_Settings):
    """Who may do what: the operator password, whether the server is public, whether the app may train."""

    secrets: ClassVar[dict[str, tuple[str, str]]] = {
        "operator_password": ("operator", "password"),
        "training": ("training", "enabled"),
    }

    operator_password: str | None = Field(None, repr=False)
    """The operator password, or ``[operator] password`` in the secrets file."""
    public: bool = False
    """Others reach this server (e.g. through a reverse proxy on this machine), so a loopback bind address does not
    make it private."""
    training: bool = True
    """Off (``off`` or ``[training] enabled = false``) for a public demo: no training from the app at all."""

    @field_validator("operator_password", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return value or None


class TrainingSettings(_Settings):
    """What a training run may use."""

    train_memory_mb: float | None = Field(None, ge=0)
    """Decoded training films kept in memory up to this; unset, a quarter of the memory available at the start."""
    base_weights: str = "auto"
    """The base weights choice (see :func:`pneumo_core.modeling.architectures.resolve_base_weights`)."""
    base_weights_file: Path | None = None
    """A local DenseNet121 weights file for ``--base-weights auto``."""
    cluster: str | None = Field(None, validation_alias="TF_CONFIG")
    """TensorFlow's description of a training cluster and this process's task in it."""


_S = TypeVar("_S", bound=_Settings)
GROUPS: tuple[type[_Settings], ...] = (Locations, ServingSettings, MonitorSettings, ApiSettings, AccessSettings, TrainingSettings)
"""Every settings group; :func:`check_settings` reads them all, the configuration page lists their variables."""


_ALIASED = frozenset(
    field.validation_alias for group in GROUPS for field in group.model_fields.values() if isinstance(field.validation_alias, str)
)
"""The variables a setting reads without the ``PNEUMO_`` prefix (``MLFLOW_TRACKING_URI``, ``TF_CONFIG``)."""


def _environment() -> tuple[tuple[str, str], ...]:
    """The variables settings read, as the key under which their groups are built."""
    return tuple(sorted((name, value) for name, value in os.environ.items() if name.startswith("PNEUMO_") or name in _ALIASED))


@functools.lru_cache(maxsize=32)
def _read(group: type[_S], environment: tuple[tuple[str, str], ...]) -> _S:
    try:
        return group()
    except ValidationError as error:
        problems = []
        for problem in error.errors():
            field = str(problem["loc"][0])
            where = group.variable(field)
            if where not in os.environ and field in group.secrets:
                section, key = group.secrets[field]
                where = f"[{section}] {key} in {locations().secrets_file}"
            value = os.environ.get(where, problem["input"])
            problems.append(f"{where}={value!r} is not a setting: {problem['msg'].removeprefix('Value error, ')}.")
        raise SettingError(" ".join(problems)) from None


def locations() -> Locations:
    """Folders and stores (:class:`Locations`)."""
    return _read(Locations, _environment())


def serving_settings() -> ServingSettings:
    """The served model and its runtime (:class:`ServingSettings`)."""
    return _read(ServingSettings, _environment())


def monitor_settings() -> MonitorSettings:
    """The monitoring store (:class:`MonitorSettings`)."""
    return _read(MonitorSettings, _environment())


def api_settings() -> ApiSettings:
    """The REST API's keys and limits (:class:`ApiSettings`)."""
    return _read(ApiSettings, _environment())


def access_settings() -> AccessSettings:
    """Who may do what (:class:`AccessSettings`)."""
    return _read(AccessSettings, _environment())


def training_settings() -> TrainingSettings:
    """A training run's resources (:class:`TrainingSettings`)."""
    return _read(TrainingSettings, _environment())


def check_settings() -> None:
    """Read every group: wrong values stop the entry point with one :class:`SettingError` naming each variable (the
    app, the REST API, the command line and ``train.py`` call this first)."""
    problems = []
    for group in GROUPS:
        try:
            _read(group, _environment())
        except SettingError as error:
            problems.append(str(error))
    if problems:
        raise SettingError(" ".join(problems))


def quiet_tensorflow() -> None:
    """Set TensorFlow's log level (:data:`TENSORFLOW_LOG_LEVEL`) before it is imported, unless the environment chose."""
    os.environ.setdefault(TF_LOG_LEVEL_ENV, TENSORFLOW_LOG_LEVEL)


def site_sample_dir(data_dir: Path | None = None) -> Path:
    """The labelled site sample beside the training split (``DATA_DIR/site_sample``): films of the later collection
    to measure, calibrate and select on, never to train on."""
    return Path(data_dir or locations().data_dir) / "site_sample"


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
