"""A property-based run of the REST API's own OpenAPI schema (schemathesis), in-process: no 5xx, and every response
(status, headers, body) matches what the schema says.

Schemathesis reads the schema when this module is imported, so the app is built then, on a model directory that the
``fuzzed_api`` fixture fills with the tiny test model before the app's lifespan starts loading it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from fastapi.testclient import TestClient
from schemathesis.specs.openapi.checks import negative_data_rejection

from pneumo_api import create_app

KEY = "fuzz-test-key-0123456789"
MODEL_DIR = Path(tempfile.mkdtemp(prefix="pneumo-fuzz-")) / "model"
APP = create_app(MODEL_DIR, rate="100000/minute")
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module")
def fuzzed_api(tiny_model_dir):
    shutil.copytree(tiny_model_dir, MODEL_DIR)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PNEUMO_API_KEYS", KEY)  # schemathesis's client is not loopback: it authenticates with a key
        patch.delenv("PNEUMO_API_AUTH", raising=False)
        with TestClient(APP):  # the lifespan: the model loads
            APP.state.model.wait(120)
            yield APP
    shutil.rmtree(MODEL_DIR.parent, ignore_errors=True)


@schema.parametrize()
@hypothesis.settings(max_examples=30, deadline=None, suppress_health_check=list(hypothesis.HealthCheck), derandomize=True)
def test_no_server_error_and_responses_match_the_schema(case, fuzzed_api):
    # Uploads are judged per file by design: any bytes in a file part are a file, answered with its own error record
    # in a 200 (a batch with some bad files still answers the good ones), and FastAPI reads an empty form field as
    # absent (explain's method="" gets the default). So "invalid data must be rejected" is checked on the GETs only.
    excluded = [negative_data_rejection] if case.method.upper() == "POST" else []
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"}, excluded_checks=excluded)
