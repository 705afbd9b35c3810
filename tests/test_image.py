"""The serve container image, built and run here: not root, no TensorFlow, healthy, and answering as the CLI does.

Builds with ``deploy/build-image.sh serve`` (Docker when a daemon answers, else buildah) and checks with
``deploy/check-image.sh serve``. Several minutes: marked ``image``, left out of the default run and run by CI in a
step of its own (``python -m pytest -m image``).
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from pneumo_core.cli.main import main

from .conftest import PROJECT_ROOT

pytestmark = [
    pytest.mark.image,
    pytest.mark.skipif(shutil.which("buildah") is None and shutil.which("docker") is None, reason="needs buildah or Docker"),
]


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """The JSON line of check-image.sh and the API's answers for the example films, from a fresh build."""
    build = subprocess.run(
        ["bash", "deploy/build-image.sh", "serve"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=3600
    )
    assert build.returncode == 0, build.stderr[-3000:]
    image = build.stdout.strip().splitlines()[-1]
    answers = tmp_path_factory.mktemp("image") / "answers.json"
    check = subprocess.run(
        ["bash", "deploy/check-image.sh", "serve", image, "--answers", str(answers)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert check.returncode == 0, check.stdout + check.stderr[-3000:]
    return json.loads(check.stdout.strip().splitlines()[-1]), json.loads(answers.read_text())


def test_the_serve_image_runs_unprivileged_without_tensorflow_and_classifies_a_film(checked):
    line, _ = checked
    assert line["user"] != "root" and line["tensorflow"] is False
    assert line["readyz"] == 200 and line["app_health"] == 200
    assert line["label"] in ("NORMAL", "PNEUMONIA")


def test_the_serve_image_answers_as_the_command_line_does(checked, capsys):
    _, answers = checked
    films = sorted((PROJECT_ROOT / "examples").glob("*.jpeg"))
    main(["predict", *map(str, films)])
    cli = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(answers["results"]) == len(cli) == len(films)
    for served, local, film in zip(answers["results"], cli, films):
        assert served.pop("file") == film.name and local.pop("file") == str(film)  # the upload's name; the path given
        assert served == local
