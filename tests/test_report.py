"""The one-page PDF case report: a real PDF, one page, every character printable, no verdict when not assessed."""

import numpy as np
import pytest

from devtools.imaging import synthetic_xray
from pneumo_core.serving.answers import Case, Prediction
from ui.report import ReportContext, case_report_pdf

CONTEXT = ReportContext("pneumo-test — model", "ab" * 32, "site:north", "Grad-CAM")


def pdf_text(pdf: bytes) -> str:
    pypdf = pytest.importorskip("pypdf")
    import io

    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    return reader.pages[0].extract_text()


def test_report_of_an_answered_film():
    film = synthetic_xray(224, seed=1)
    case = Case("film–ä.png", film, Prediction(0.93, 0.69, 2.5), warnings=("unusual film",))
    pdf = case_report_pdf(case, np.stack([film] * 3, axis=-1), CONTEXT)
    assert pdf.startswith(b"%PDF") and b"DejaVu" in pdf
    text = pdf_text(pdf)
    for expected in (
        "PNEUMONIA",
        "93.0%",
        "69.0%",
        "site profile north",
        "Referral band",
        "Warning: unusual film",
        "not for clinical use",
        "film–ä.png",
        "pneumo-test — model",
        "evidence for PNEUMONIA",
    ):
        assert expected in text, expected


def test_report_of_a_film_not_assessed_has_no_verdict():
    film = synthetic_xray(224, seed=2)
    reason = "This does not look like a frontal chest X-ray: it is a colour picture, and X-rays are gray."
    case = Case("photo.png", film, Prediction(0.99, 0.69, 4.0), warnings=(reason,), withheld=reason)
    text = pdf_text(case_report_pdf(case, None, CONTEXT))
    assert "Not assessed" in text and "Probability of pneumonia" not in text
    assert "PNEUMONIA" not in text.replace("NORMAL/PNEUMONIA", "")
    assert "as the model sees it" not in text and "not assessed (224" in text
    assert "threshold" not in text.lower() and "Referral band" not in text and "heat map" not in text
    assert text.count("it is a colour picture") == 1 and "Warning:" not in text  # the reason, said once
    assert "site:" not in text and "temperature" not in text


def test_without_dejavu_the_report_is_not_offered_and_says_what_to_install(monkeypatch):
    import sys

    import ui.report

    monkeypatch.setattr(ui.report, "FONT_DIRS", ())
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    assert ui.report.font_dir() is None
    with pytest.raises(RuntimeError, match="fonts-dejavu-core"):
        case_report_pdf(Case("film.png", synthetic_xray(224, seed=1), Prediction(0.2, 0.5, -1.0)), None, CONTEXT)
