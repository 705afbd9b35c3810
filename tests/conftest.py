"""Shared fixtures. Tests run offline, write only to temporary folders and never touch the served model."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_SANDBOX = Path(tempfile.mkdtemp(prefix="pneumo-tests-"))
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_SANDBOX / 'mlflow.db'}"
os.environ["PNEUMO_RUNS_DIR"] = str(_SANDBOX / "runs")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data" / "chest_xray"
SERVED_MODEL = PROJECT_ROOT / "models" / "served"


@pytest.fixture(scope="session")
def sandbox() -> Path:
    return _SANDBOX


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not (SHARED_DATA / "train" / "NORMAL").is_dir():
        pytest.skip("the shared Kermany training images are not available")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model_dir(sandbox: Path) -> Path:
    """An untrained 64-px classifier saved as a model directory (fast; for contract tests, not accuracy)."""
    import keras

    from pneumo_core import CLASS_NAMES
    from pneumo_core.common.preprocess import preprocessing_spec
    from pneumo_core.modeling.architectures import build_classifier
    from pneumo_core.modeling.saving import save_model_dir

    keras.utils.set_random_seed(0)
    model = build_classifier(64, None, dropout=0.0, head_units=0)
    metadata = {
        "name": "tiny-test-model",
        "class_names": list(CLASS_NAMES),
        "input_size": 64,
        "preprocessing": preprocessing_spec(),
        "threshold": 0.5,
        "temperature": 1.0,
    }
    return save_model_dir(model, sandbox / "tiny_model", metadata)


@pytest.fixture(scope="session")
def tiny_predictor(tiny_model_dir: Path):
    from pneumo_core.serving.predictor import Predictor

    return Predictor.load(tiny_model_dir)


POSTGRES_URI_ENV = "PNEUMO_TEST_POSTGRES_URI"
"""A PostgreSQL server's admin URI (``.ci/run`` starts a throwaway one on loopback and sets it)."""


@pytest.fixture(scope="module")
def postgres_database():
    """A fresh PostgreSQL database for one test module (dropped afterwards): its SQLAlchemy URI."""
    import uuid

    admin = os.environ.get(POSTGRES_URI_ENV)
    if not admin:
        pytest.skip(f"no PostgreSQL to test against: .ci/run starts one and sets {POSTGRES_URI_ENV}")
    import psycopg

    database = f"pneumo_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    yield admin.rsplit("/", 1)[0] + f"/{database}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE "{database}" WITH (FORCE)')


@pytest.fixture(scope="module")
def redis_uri(tmp_path_factory):
    """A throwaway Redis on loopback for one test module (Debian's redis-server, which ``.ci/run`` installs)."""
    import shutil

    from devtools.harness import redis_server

    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (.ci/run installs Debian's package)")
    with redis_server(tmp_path_factory.mktemp("redis") / "redis.log") as uri:
        yield uri


def pytest_sessionfinish(session, exitstatus):
    import shutil

    shutil.rmtree(_SANDBOX, ignore_errors=True)
