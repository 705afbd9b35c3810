"""The team set-up: tracking and the model registry on an MLflow server whose backend store is PostgreSQL.

``.ci/run`` starts a throwaway PostgreSQL on loopback and names it in ``$PNEUMO_TEST_POSTGRES_URI``; this module
creates a database of its own there, runs ``mlflow server`` on it (artifacts served by the server), and takes the
same train → register → promote → roll back → serve-from-the-registry path as the SQLite tests.
"""

import os
import subprocess
import sys
import time
import urllib.request

import pytest

from devtools.harness import free_port
from pneumo_core.config import REGISTERED_MODEL
from pneumo_core.jobs.request import TrainConfig

pytestmark = pytest.mark.slow

SERVER_START_SECONDS = 120


@pytest.fixture(scope="module")
def tracking_server(postgres_database, tmp_path_factory):
    """``mlflow server`` on loopback over the PostgreSQL store, serving artifacts from a temporary folder."""
    import mlflow

    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    command = [
        sys.executable, "-m", "mlflow", "server", "--backend-store-uri", postgres_database,
        "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with open(folder / "server.log", "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"mlflow server did not start: {(folder / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
    yield url
    server.terminate()
    server.wait(timeout=30)
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])  # the other tests' store, not this stopped server


def test_train_register_promote_roll_back_and_serve_against_the_server(
    tracking_server, postgres_database, real_data, tmp_path, monkeypatch
):
    import mlflow
    import psycopg

    from pneumo_core.operations.promotion import promote_candidate, promote_version, roll_back_served
    from pneumo_core.serving.predictor import Predictor
    from pneumo_core.store import mlflow_registry as model_registry
    from pneumo_core.store.model_dir import read_metadata
    from pneumo_core.training.trainer import run_training

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    monkeypatch.setenv("PNEUMO_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("PNEUMO_MODEL_DIR", str(tmp_path / "models" / "served"))
    config = TrainConfig(
        data_dir=str(real_data),
        base_weights="none",
        output_dir=str(tmp_path / "runs"),
        run_name="server",
        smoke=True,
        architecture="efficientnetv2b0",  # the quicker graph to build: the store is what is tested
    )
    candidate = run_training(config)
    metadata = read_metadata(candidate)
    first = metadata["registry_version"]
    client = mlflow.MlflowClient(tracking_server)
    assert client.get_run(metadata["mlflow_run_id"]).info.status == "FINISHED"
    stored = client.get_model_version(REGISTERED_MODEL, first)
    assert stored.tags["model_sha256"] == metadata["model_sha256"] and stored.source.startswith(("mlflow-artifacts:", "models:"))

    promote_candidate(candidate, "test")
    assert model_registry.alias_version("champion") == first
    second = model_registry.register_version(stored.run_id, stored.source, metadata, "the same model, again")
    promote_version(second, "test")  # downloaded from the server's artifact store
    assert (model_registry.alias_version("champion"), model_registry.alias_version("previous")) == (second, first)
    roll_back_served("test")
    assert (model_registry.alias_version("champion"), model_registry.alias_version("previous")) == (first, second)

    monkeypatch.setenv("PNEUMO_MODEL_URI", f"models:/{REGISTERED_MODEL}@previous")
    served = Predictor.load()
    assert served.metadata["registry_version"] == second and served.metadata["model_sha256"] == metadata["model_sha256"]

    with psycopg.connect(postgres_database) as connection:  # the registry really lives in PostgreSQL
        versions = connection.execute("SELECT count(*) FROM model_versions WHERE name = %s", (REGISTERED_MODEL,)).fetchone()
        aliases = dict(connection.execute("SELECT alias, version FROM registered_model_aliases").fetchall())
    assert versions == (2,) and aliases == {"champion": int(first), "previous": int(second)}
