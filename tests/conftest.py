"""Shared fixtures. Tests run offline, write only to temporary folders and never touch the served model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_SANDBOX = Path(tempfile.mkdtemp(prefix="pneumo-tests-"))
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_SANDBOX / 'mlflow.db'}"
os.environ["PNEUMO_RUNS_DIR"] = str(_SANDBOX / "runs")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from devtools.apptest import bind_address  # noqa: E402
from devtools.imaging import encode, synthetic_xray  # noqa: E402
from pneumo_core.evaluation.reports import predictions_frame, write_evaluation  # noqa: E402
from pneumo_core.store.model_dir import EVALUATION_DIR  # noqa: E402

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


@pytest.fixture(scope="module")
def app_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model plus evaluation artifacts for a few real file names, as the Metrics page expects."""
    import shutil

    directory = tmp_path_factory.mktemp("served") / "served"
    shutil.copytree(tiny_model_dir, directory)
    rng = np.random.default_rng(0)
    files = [f"NORMAL/IM-0{i}15-0001.jpeg" for i in range(1, 7)] + [
        f"PNEUMONIA/person{i}_bacteria_{i}.jpeg" for i in range(1, 11)
    ]
    labels = np.array([0] * 6 + [1] * 10)
    frame = predictions_frame(files, labels, rng.normal(labels * 2 - 1, 1.0), 1.0, 0.5)
    write_evaluation(frame, 0.5, directory / EVALUATION_DIR, "test")
    return directory


@pytest.fixture
def app_env(monkeypatch, app_model_dir, tmp_path):
    """The tiny model, a private runs folder and a Kermany-layout data folder holding synthetic films under the file names
    of the model's evaluation (so the Metrics page can show them): no dependence on ../shared."""
    import pandas as pd

    data = tmp_path / "data" / "chest_xray"
    for seed, name in enumerate(pd.read_csv(app_model_dir / EVALUATION_DIR / "test_predictions.csv")["file"]):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_bytes(encode(synthetic_xray(160, seed=seed), "JPEG"))
    monkeypatch.setenv("PNEUMO_MODEL_DIR", str(app_model_dir))
    monkeypatch.setenv("PNEUMO_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("PNEUMO_DATA_DIR", str(data))
    monkeypatch.setenv("PNEUMO_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))
    monkeypatch.delenv("PNEUMO_OPERATOR_PASSWORD", raising=False)
    monkeypatch.delenv("PNEUMO_PUBLIC", raising=False)
    with bind_address("127.0.0.1"):  # the committed .streamlit/config.toml: loopback, operators need no password
        yield tmp_path


@pytest.fixture
def running_job(app_env):
    """A current job whose process is alive (a sleeper standing in for train.py) with one epoch reported."""
    runs = app_env / "runs"
    runs.mkdir(exist_ok=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    progress = runs / "job" / "progress.jsonl"
    progress.parent.mkdir()
    epoch = {"phase": "scratch_128px", "epoch": 1, "epochs": 4, "steps": 10, "eta_s": 120}
    events = [
        {"event": "start", "time": time.time(), "pid": sleeper.pid},
        {
            "event": "epoch",
            "time": time.time(),
            "pid": sleeper.pid,
            **epoch,
            "metrics": {"loss": 0.5, "val_loss": 0.6, "auc": 0.8, "val_auc": 0.7},
        },
    ]
    progress.write_text("".join(json.dumps(e) + "\n" for e in events))
    job = {
        "run_name": "job",
        "pid": sleeper.pid,
        "run_dir": str(progress.parent),
        "progress_file": str(progress),
        "log_file": str(progress.parent / "train.log"),
        "started": "now",
    }
    (runs / "current_job.json").write_text(json.dumps(job))
    yield sleeper
    sleeper.kill()
    sleeper.wait()
