"""The Classify page in AppTest: answers, heat maps, duplicates, bad files, patient data, models that cannot serve."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from devtools.apptest import (
    APP,
    TIMEOUT,
    probability_lines,
    run_page,
    texts,
)
from devtools.imaging import dicom_bytes, encode, synthetic_xray


def test_classify_page_shows_disclaimer_and_examples(app_env):
    at = run_page()
    assert "Classify a chest X-ray" in texts(at)
    assert "not for clinical use" in texts(at)
    assert any(b.key and b.key.startswith("example_") for b in at.button)


def test_example_button_classifies(app_env):
    at = run_page()
    next(b for b in at.button if b.key and b.key.startswith("example_")).click().run()
    assert not at.exception
    assert probability_lines(at)
    assert any(verdict in texts(at) for verdict in ("**NORMAL**", "**PNEUMONIA**", "**REFER**"))


@pytest.mark.parametrize("method", ["Grad-CAM++", "ScoreCAM"])
def test_other_methods_are_computed_from_the_answer_on_the_serving_runtime(app_env, method):
    at = run_page()
    next(b for b in at.button if b.key and b.key.startswith("example_")).click().run()
    at.selectbox(key="cam_method").set_value(method).run()
    assert not at.exception
    assert [key[1] for key in at.session_state["cams"]] == ["Grad-CAM", method]  # the default map first, then this one
    captions = [image.caption for element in at.get("image") for image in element.proto.imgs]
    assert any(caption.startswith(f"{method}: evidence for ") for caption in captions)


def test_removed_uploads_are_forgotten(app_env):
    at = run_page()
    first, second = encode(synthetic_xray(200, seed=1)), encode(synthetic_xray(200, seed=2))
    at.file_uploader(key="uploads_0").set_value([("a.png", first, "image/png"), ("b.png", second, "image/png")]).run()
    assert len(at.session_state["cases"]) == 2
    at.file_uploader(key="uploads_0").set_value([("b.png", second, "image/png")]).run()
    assert not at.exception and len(at.session_state["cases"]) == 1


def test_reruns_keep_the_compiled_model_functions(app_env, monkeypatch):
    """Streamlit's post-run clean-up would call keras.backend.clear_session().

    That would force every compiled graph to be re-optimised."""
    import keras

    cleared = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *args, **kwargs: cleared.append(True))
    at = run_page()
    next(b for b in at.button if b.key and b.key.startswith("example_")).click().run()
    at.run()
    assert not at.exception and cleared == []


def test_mixed_batch_good_files_answered_bad_files_explained(app_env, app_model_dir):
    from pneumo_core.serving.predictor import Predictor
    from ui.widgets import decision_words

    at = run_page()
    good = encode(synthetic_xray(200, seed=1))
    uploads = [
        ("good.png", good, "image/png"),
        ("broken.png", b"\x89PNG garbage", "image/png"),
        ("also_good.jpg", encode(synthetic_xray(150, seed=2), "JPEG"), "image/jpeg"),
    ]
    at.file_uploader(key="uploads_0").set_value(uploads).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(probability_lines(at)) == 2
    errors = [e.value for e in at.error]
    assert any("broken" not in e and "damaged" in e for e in errors)
    table = at.dataframe[0].value
    assert list(table["file"]) == ["good.png", "broken.png", "also_good.jpg"]
    assert table.loc[1, "P(pneumonia)"] == table.loc[1, "decision"] == "" and "damaged" in table.loc[1, "reason no label"]
    (case,) = Predictor.load(app_model_dir).classify([("good.png", good)])
    assert table.loc[0, "decision"] == decision_words(case.verdict)  # the film's own decision, in the page's words
    assert set(table.columns) >= {"model", "operating point", "threshold", "referral band", "warnings", "time (UTC)"}
    assert list(table.columns[:2]) == ["file", "decision"]  # the answer first
    assert set(table["operating point"]) == {"validation"}


def test_byte_identical_films_each_get_their_section_and_are_named_the_same_film(app_env):
    at = run_page()
    film = encode(synthetic_xray(160, seed=5))
    uploads = [
        ("film.png", film, "image/png"),
        ("copy_of_film.png", film, "image/png"),
        ("other.png", encode(synthetic_xray(140, seed=6)), "image/png"),
    ]
    at.file_uploader(key="uploads_0").set_value(uploads).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [s.value for s in at.subheader if s.value.endswith(".png")] == ["film.png", "copy_of_film.png", "other.png"]
    assert len(probability_lines(at)) == 3  # every film its answer, its scale and its report
    assert any("The same film as film.png" in i.value for i in at.info)
    table = at.dataframe[0].value
    assert table.loc[0, "P(pneumonia)"] == table.loc[1, "P(pneumonia)"] != ""
    first_times = list(table["time (UTC)"])
    time.sleep(1.1)
    at.run()  # a redraw answers nothing again: each film keeps the time of its answer
    assert list(at.dataframe[0].value["time (UTC)"]) == first_times and all(first_times)


def test_every_added_film_is_classified_in_pages_of_twelve_and_one_click_clears_the_batch(app_env):
    at = run_page()
    first = [(f"first_{i}.png", encode(synthetic_xray(96, seed=i)), "image/png") for i in range(12)]
    at.file_uploader(key="uploads_0").set_value(first).run()
    assert len(at.dataframe[0].value) == 12 and not any("are classified" in w.value for w in at.warning)
    added = [(f"added_{i}.png", encode(synthetic_xray(96, seed=100 + i)), "image/png") for i in range(3)]
    at.file_uploader(key="uploads_0").set_value(first + added).run()  # the uploader keeps the first batch
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert list(table["file"]) == [name for name, _, _ in first + added]
    assert (table["decision"] != "").all()  # every film answered, the added ones too
    pages = at.get("button_group")[0]
    assert pages.options == ["Films 1–12", "Films 13–15"]
    assert len(probability_lines(at)) == 12  # heat maps and reports a page at a time
    pages.set_value("Films 13–15").run()
    films_shown = [s.value for s in at.subheader if s.value.endswith(".png")]
    assert len(probability_lines(at)) == 3 and films_shown == [name for name, _, _ in added]
    clear = next(b for b in at.button if b.label == "Clear all films")
    clear.click().run()
    assert not at.dataframe and at.file_uploader(key="uploads_1").value in (None, [])
    assert "cases" not in at.session_state or not at.session_state["cases"]  # the answers are forgotten too


def test_a_colour_picture_gets_no_verdict_in_the_page_or_the_csv(app_env):
    import io

    from PIL import Image
    from sklearn.datasets import load_sample_images

    photo = io.BytesIO()
    Image.fromarray(load_sample_images().images[1]).save(photo, format="PNG")
    at = run_page()
    at.file_uploader(key="uploads_0").set_value([("flower.png", photo.getvalue(), "image/png")]).run()
    assert not at.exception
    assert "Not assessed" in texts(at) and "colour picture" in texts(at)
    assert not probability_lines(at)
    assert "**NORMAL**" not in texts(at) and "**PNEUMONIA**" not in texts(at)
    table = at.dataframe[0].value  # the one-film table, as downloaded
    assert table.loc[0, "decision"] == "" and "colour picture" in table.loc[0, "reason no label"]
    # its PDF report says "Not assessed" (tests/test_report.py)
    assert [b.label for b in at.get("download_button")][-1] == "Download case report (PDF)"


def test_dicom_patient_fields_only_in_the_expander_and_never_logged(app_env):
    import logging

    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Collect(level=logging.DEBUG)
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        at = run_page()
        pixels = synthetic_xray(200, seed=3).astype(np.uint16) * 16
        at.file_uploader(key="uploads_0").set_value([("scan.dcm", dicom_bytes(pixels), "application/dicom")]).run()
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(handler)
            logger.setLevel(level)
    assert not at.exception, [e.value for e in at.exception]
    assert probability_lines(at)
    expander = next(e for e in at.expander if "DICOM header fields" in e.label)
    assert "Doe^Jane" in expander.table[0].value.to_string()
    assert "Doe^Jane" not in texts(at) and "P-123" not in texts(at)  # nowhere outside the expander
    assert records and not any("Doe^Jane" in r or "P-123" in r or "scan.dcm" in r for r in records)


def test_no_model_gives_a_message_not_a_traceback(monkeypatch, tmp_path):
    monkeypatch.setenv("PNEUMO_MODEL_DIR", str(tmp_path / "nothing-here"))
    for page in (None, "app_pages/metrics.py", "app_pages/model_card.py"):
        at = run_page(page)
        assert "No model" in texts(at)


def test_a_tampered_model_file_is_refused_with_a_message(monkeypatch, tiny_model_dir, tmp_path):
    import shutil

    tampered = tmp_path / "tampered"
    shutil.copytree(tiny_model_dir, tampered)
    with open(tampered / "model.keras", "ab") as handle:
        handle.write(b"\0")
    monkeypatch.setenv("PNEUMO_MODEL_DIR", str(tampered))
    at = run_page()
    next(b for b in at.button if b.key and b.key.startswith("example_")).click().run()
    assert not at.exception and "does not match its metadata" in texts(at)
    assert not probability_lines(at)


def test_a_wrong_setting_stops_the_app_with_its_variable_named(app_env, monkeypatch):
    monkeypatch.setenv("PNEUMO_RUNTIME", "fast")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception and any("PNEUMO_RUNTIME='fast'" in e.value for e in at.error)
    assert not at.button and not at.file_uploader  # nothing else ran


def test_probability_scale_shows_the_marker_above_the_bars_and_the_whole_range():
    from pneumo_core.serving.answers import Prediction
    from pneumo_core.visualize.scale import probability_scale

    figure = probability_scale(Prediction(probability=0.988, threshold=0.08, logit=4.0))
    assert all(shape.layer == "below" for shape in figure.layout.shapes)  # the dot is never hidden under a bar
    assert list(figure.data[0].x) == [0.988] and figure.data[0].text == ("98.8%",)
    assert figure.layout.xaxis.tickvals[-1] == 1 and figure.layout.xaxis.range[1] >= 1


def test_a_pdf_upload_is_refused_on_the_page_with_its_reason(app_env):
    at = run_page()
    at.file_uploader(key="uploads_0").set_value([("scan.pdf", b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n", "application/pdf")]).run()
    assert not at.exception
    assert any("PDF document, not an image" in e.value for e in at.error)
    assert at.dataframe[0].value.loc[0, "decision"] == ""


def test_example_buttons_have_readable_names(app_env):
    at = run_page()
    labels = [b.label for b in at.button if b.key and b.key.startswith("example_")]
    assert sorted(labels) == ["Normal film 1", "Normal film 2", "Pneumonia, bacterial", "Pneumonia, viral"]


def test_the_heat_map_can_show_the_evidence_for_either_class(app_env):
    at = run_page()
    next(b for b in at.button if b.key and b.key.startswith("example_")).click().run()
    captions = lambda: [image.caption for element in at.get("image") for image in element.proto.imgs]  # noqa: E731
    answer = next(c for c in captions() if c.startswith("Grad-CAM: evidence for ")).split()[-1]
    other = "NORMAL" if answer == "PNEUMONIA" else "PNEUMONIA"
    at.radio(key="cam_class").set_value(other).run()
    assert not at.exception and f"Grad-CAM: evidence for {other}" in captions()
    assert [key[1:] for key in at.session_state["cams"]] == [("Grad-CAM", answer), ("Grad-CAM", other)]  # once each


def test_answers_shown_follow_a_new_operating_point_not_the_old_cache(app_env, app_model_dir):
    """The page keeps answers per file *and* per model and operating point: after a profile activation the same
    film is answered again at the new point, not shown with the old verdict under the new name."""

    from pneumo_core.store.profiles import SiteProfile, activate, save_profile

    at = run_page()
    at.file_uploader(key="uploads_0").set_value([("film.png", encode(synthetic_xray(160, seed=9)), "image/png")]).run()
    assert set(at.dataframe[0].value["operating point"]) == {"validation"}
    sha = json.loads((app_model_dir / "metadata.json").read_text())["model_sha256"]
    empty = {"metrics": {}, "intervals": {}, "validation_operating_point": {}}
    profile = SiteProfile("north", 0.123, 1.0, "youden", "", 2, 1, 1, "data", "now", "m", sha, **empty, referral_band=[0.1, 0.2])
    save_profile(profile, app_model_dir)
    activate(app_model_dir, "north")
    try:
        at.run()
        table = at.dataframe[0].value
        assert set(table["operating point"]) == {"site:north"} and set(table["threshold"]) == {"0.1230"}
    finally:
        activate(app_model_dir, None)
