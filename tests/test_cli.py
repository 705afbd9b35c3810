"""The ``python -m pneumo_core`` contract: JSON lines in a stable order, error records, exit codes 0/1/2."""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.imaging import encode, synthetic_xray
from pneumo_core.cli.main import main

from .conftest import PROJECT_ROOT


@pytest.fixture(scope="module")
def upload_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uploads")
    (folder / "b_film.png").write_bytes(encode(synthetic_xray(150, seed=1)))
    (folder / "nested").mkdir()
    (folder / "nested" / "a_film.jpg").write_bytes(encode(synthetic_xray(300, seed=2), "JPEG"))
    (folder / "notes.txt").write_text("not an image, and not picked up from a folder")
    (folder / "broken.jpeg").write_bytes(b"\xff\xd8\xff garbage")
    return folder


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, [json.loads(line) for line in out.out.splitlines()], out.err


def test_predict_files_and_folders_in_stable_order(capsys, tiny_model_dir, upload_folder):
    single = upload_folder / "b_film.png"
    code, records, _ = run_cli(capsys, "predict", "--model", tiny_model_dir, single, upload_folder)
    assert code == 1  # broken.jpeg failed, the rest were still printed
    assert [Path(r["file"]).name for r in records] == ["b_film.png", "b_film.png", "broken.jpeg", "a_film.jpg"]
    good = [r for r in records if "error" not in r]
    for record in good:
        assert set(record) >= {"file", "label", "probability", "threshold"}
        assert record["label"] in ("NORMAL", "PNEUMONIA") and 0 <= record["probability"] <= 1
        assert record["label"] == ("PNEUMONIA" if record["probability"] >= record["threshold"] else "NORMAL")
    assert records[0]["probability"] == records[1]["probability"]  # same file, same answer
    broken = records[2]
    assert set(broken) == {"file", "error"} and "damaged" in broken["error"] and "\n" not in broken["error"]


def test_predict_all_good_exits_zero_and_threshold_override(capsys, tiny_model_dir, upload_folder):
    code, records, _ = run_cli(capsys, "predict", "--model", tiny_model_dir, "--threshold", "0", upload_folder / "b_film.png")
    assert code == 0 and records[0]["threshold"] == 0 and records[0]["label"] == "PNEUMONIA"


def test_predict_missing_file_is_an_error_record(capsys, tiny_model_dir, tmp_path):
    code, records, _ = run_cli(capsys, "predict", "--model", tiny_model_dir, tmp_path / "nope.png")
    assert code == 1 and records == [{"file": str(tmp_path / "nope.png"), "error": "No such file."}]


@pytest.mark.parametrize("args", [["predict"], ["frobnicate"], [], ["evaluate"]])
def test_usage_errors_exit_two(args):
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 2


def test_bad_threshold_exits_two(capsys, tiny_model_dir, upload_folder):
    code, records, err = run_cli(capsys, "predict", "--model", tiny_model_dir, "--threshold", "2", upload_folder)
    assert code == 2 and records == [] and "between 0 and 1" in err


def test_missing_model_exits_three_with_a_message(capsys, tmp_path, upload_folder):
    code, records, err = run_cli(capsys, "predict", "--model", tmp_path / "no-model", upload_folder)
    assert code == 3 and records == [] and "No model found" in err


def test_tflite_runtime_or_export_on_a_model_without_one_is_refused(capsys, tiny_model_dir, upload_folder):
    code, records, err = run_cli(capsys, "predict", "--model", tiny_model_dir, "--runtime", "tflite", upload_folder)
    assert code == 3 and records == [] and "no TFLite copy" in err  # the model cannot be loaded so
    code, _, err = run_cli(capsys, "export-tflite", "--model", tiny_model_dir)  # 64 px: area resizing has no TFLite kernel
    assert code == 2 and "Only 224-px models" in err


def test_sanity_without_a_manifest_or_images_exits_two(capsys, tiny_model_dir, tmp_path):
    code, _, err = run_cli(capsys, "sanity", "--model", tiny_model_dir)  # the tiny model has no evaluation manifest
    assert code == 2 and "manifest.csv" in err
    code, _, err = run_cli(capsys, "sanity", "--model", tiny_model_dir, tmp_path)  # an empty folder
    assert code == 2 and "none of the images" in err


def test_evaluate_writes_metrics_and_predictions(capsys, tiny_model_dir, tmp_path):
    for label, seeds in (("NORMAL", range(3)), ("PNEUMONIA", range(3, 7))):
        (tmp_path / "data" / label).mkdir(parents=True)
        for seed in seeds:
            (tmp_path / "data" / label / f"img{seed}.png").write_bytes(encode(synthetic_xray(120, seed)))
    code = main(["evaluate", str(tmp_path / "data"), "--model", str(tiny_model_dir), "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert code == 0 and "accuracy" in printed and "roc_auc" in printed
    predictions = (tmp_path / "out" / "evaluation_predictions.csv").read_text().splitlines()
    assert len(predictions) == 8 and predictions[0].startswith("file,label")
    metrics = json.loads((tmp_path / "out" / "evaluation_metrics.json").read_text())
    assert metrics["n"] == 7 and metrics["tp"] + metrics["fn"] == 4
    assert predictions[0].endswith(",decision") and "referral band" in printed
    decisions = [line.rsplit(",", 1)[1] for line in predictions[1:]]
    assert [decisions.count(name) for name in ("NORMAL", "REFER", "PNEUMONIA")] == [
        metrics["normal"],
        metrics["refer"],
        metrics["pneumonia"],
    ]
    assert (tmp_path / "out" / "evaluation_risk_coverage.html").is_file() and 0 <= metrics["referred"] <= 1


def test_real_process_exit_codes_and_clean_stderr(tiny_model_dir, upload_folder):
    """The installed entry point, as another tool calls it: no traceback even for a bad file."""
    command = [sys.executable, "-m", "pneumo_core", "predict", "--model", str(tiny_model_dir), str(upload_folder)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert len(done.stdout.splitlines()) == 3 and all("file" in json.loads(line) for line in done.stdout.splitlines())


def test_a_colour_picture_gets_no_verdict(capsys, tiny_model_dir, tmp_path):
    import io

    from PIL import Image
    from sklearn.datasets import load_sample_images

    photo = tmp_path / "holiday.png"
    buffer = io.BytesIO()
    Image.fromarray(load_sample_images().images[0]).save(buffer, format="PNG")
    photo.write_bytes(buffer.getvalue())
    code, records, _ = run_cli(capsys, "predict", "--model", tiny_model_dir, photo)
    assert code == 0  # answered: the answer is "not assessed"
    assert records[0]["label"] is None and records[0]["probability"] is None
    assert "colour picture" in records[0]["warnings"][0]


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam"])
def test_explain_writes_an_overlay_per_film_with_the_predict_records(capsys, tiny_model_dir, upload_folder, tmp_path, method):
    import numpy as np
    from PIL import Image

    from pneumo_core.serving.cams import METHODS
    from pneumo_core.serving.predictor import Predictor

    single = upload_folder / "b_film.png"
    _, predicted, _ = run_cli(capsys, "predict", "--model", tiny_model_dir, single, upload_folder)
    out = tmp_path / "maps"
    code, records, _ = run_cli(
        capsys,
        "explain",
        "--model",
        tiny_model_dir,
        "--method",
        method,
        "--class",
        "NORMAL",
        "--raw",
        "--out",
        out,
        single,
        upload_folder,
    )
    assert code == 1  # same exit codes as predict: broken.jpeg failed
    assert [{k: r[k] for k in p} for r, p in zip(records, predicted)] == predicted  # the predict records, extended
    answered = [r for r in records if "error" not in r]
    assert [Path(r["overlay"]).name for r in answered] == [
        f"b_film.{method}.NORMAL.png",
        f"b_film.{method}.NORMAL-2.png",  # the same film twice: a second file, not an overwrite
        f"a_film.{method}.NORMAL.png",
    ]
    assert all(r["method"] == method and r["explained_class"] == "NORMAL" for r in answered)
    for record in answered:
        assert Image.open(record["overlay"]).size == (224, 224)
    raw = np.load(answered[0]["map"])
    predictor = Predictor.load(tiny_model_dir)
    case = predictor.classify([("b", single.read_bytes())], with_maps=True)[0]
    expected = predictor.explain(case.canonical[None], ["NORMAL"], METHODS[["gradcam", "gradcam++", "scorecam"].index(method)])
    np.testing.assert_allclose(raw, expected[0], atol=1e-4)  # batched with other films there, alone here


def test_explain_needs_an_output_folder(capsys, tiny_model_dir, upload_folder):
    with pytest.raises(SystemExit) as stop:
        main(["explain", "--model", str(tiny_model_dir), str(upload_folder)])
    assert stop.value.code == 2 and "--out" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("quiet", [False, True])
def test_folder_commands_draw_a_progress_bar_on_a_terminal_only(tiny_model_dir, tmp_path, monkeypatch, quiet):
    for label, seed in (("NORMAL", 1), ("PNEUMONIA", 2)):
        (tmp_path / "data" / label).mkdir(parents=True)
        (tmp_path / "data" / label / "img.png").write_bytes(encode(synthetic_xray(120, seed)))
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    args = ["evaluate", str(tmp_path / "data"), "--model", str(tiny_model_dir), "--out", str(tmp_path / "out")]
    assert main(args + (["--quiet"] if quiet else [])) == 0
    drawn = terminal.getvalue()
    assert ("2/2" in drawn and "film" in drawn) != quiet  # done/total and the rate's unit


def test_a_pipe_and_a_huge_file_are_refused_from_their_stat_before_any_read(capsys, tiny_model_dir, tmp_path):
    """A FIFO would block a read forever, a 4 GB file fill memory: each gets its own record, the good film its answer."""
    import os

    fifo, huge, good = tmp_path / "pipe.png", tmp_path / "huge.dcm", tmp_path / "good.png"
    os.mkfifo(fifo)
    with open(huge, "wb") as handle:
        handle.truncate(4 * 2**30)  # sparse: 4 GB long, no disk used
    good.write_bytes(encode(synthetic_xray(128, seed=1)))
    code = main(["predict", "--model", str(tiny_model_dir), str(fifo), str(huge), str(good)])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1 and [r["file"] for r in records] == [str(fifo), str(huge), str(good)]
    assert "not a regular file" in records[0]["error"] and "too large (4096 MB" in records[1]["error"]
    assert records[2]["label"] in ("NORMAL", "PNEUMONIA")
