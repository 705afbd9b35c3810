"""A one-page PDF case report: the film and its heat map at their real resolution, the answer, the model, the disclaimer.

fpdf2 lays the page out; the text uses DejaVu Sans (:func:`font_dir`), which has every character the report
prints (em-dashes, ≥, ×, accents in file names).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from fpdf import FPDF
from PIL import Image

from pneumo_core import DISCLAIMER
from pneumo_core.common.decisions import promise_sentence
from pneumo_core.serving.answers import Case
from ui.widgets import decision_words, operating_point_label, probability_words

PAGE_MARGIN = 40  # points
IMAGE_POINTS = 224  # one canonical pixel per point: the film as the model saw it, not blown up


FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"),)
"""Where DejaVu Sans is looked for first (Debian's fonts-dejavu-core, which the container images install); then in
matplotlib's data, when matplotlib is installed."""


FONT_MISSING = "The case report needs the DejaVu Sans font: install Debian's fonts-dejavu-core (or matplotlib)."


def font_dir() -> Path | None:
    """The folder holding DejaVu Sans; None when neither place has it (the page then says so instead of offering
    the report)."""
    for directory in FONT_DIRS:
        if (directory / "DejaVuSans.ttf").is_file():
            return directory
    try:
        import matplotlib
    except ImportError:
        return None
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@dataclass(frozen=True)
class ReportContext:
    """What the report says about the model and how it answered (the same for every film of a session)."""

    model_name: str
    model_sha256: str
    operating_point: str
    method: str
    promise: dict | None = None  # a site profile's promise about the site's next films


def case_report_pdf(case: Case, heat_rgb: np.ndarray | None, context: ReportContext, explained: str | None = None) -> bytes:
    """The report of one classified (or not assessed) film, as PDF bytes; ``explained``: the class the map shows."""
    fonts = font_dir()
    if fonts is None:
        raise RuntimeError(FONT_MISSING)
    pdf = FPDF(unit="pt", format="A4")
    pdf.set_margins(PAGE_MARGIN, PAGE_MARGIN, PAGE_MARGIN)
    pdf.set_auto_page_break(False)
    pdf.add_font("DejaVu", "", str(fonts / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(fonts / "DejaVuSans-Bold.ttf"))
    pdf.add_page()
    pdf.set_title(f"pneumo case report — {case.name}")
    width = pdf.w - 2 * PAGE_MARGIN

    pdf.set_font("DejaVu", "B", 16)
    pdf.cell(width, 22, "Chest X-ray classification — case report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)
    pdf.set_text_color(86, 99, 110)
    pdf.cell(width, 14, f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M UTC} · file: {case.name}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)

    top = pdf.get_y()
    pdf.image(_png(case.canonical), x=PAGE_MARGIN, y=top, w=IMAGE_POINTS, h=IMAGE_POINTS)
    if heat_rgb is not None:
        pdf.image(_png(heat_rgb), x=PAGE_MARGIN + IMAGE_POINTS + 20, y=top, w=IMAGE_POINTS, h=IMAGE_POINTS)
    pdf.set_y(top + IMAGE_POINTS + 4)
    seen = "The picture as uploaded, not assessed" if case.withheld else "The film as the model sees it"
    caption = f"{seen} (224 × 224)"
    pdf.cell(IMAGE_POINTS + 20, 12, caption)
    if heat_rgb is not None:
        pdf.cell(
            IMAGE_POINTS,
            12,
            f"{context.method}: evidence for {explained or case.prediction.label}",
            new_x="LMARGIN",
            new_y="NEXT",
        )
    pdf.ln(18)

    pdf.set_text_color(29, 39, 48)
    pdf.set_font("DejaVu", "B", 14)
    pdf.cell(width, 20, _headline(case), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 10)
    for line in _facts(case, context):
        pdf.multi_cell(width, 14, line, new_x="LMARGIN", new_y="NEXT")
    for warning in (w for w in case.warnings if w != case.withheld):  # the reason is already said once
        pdf.set_text_color(122, 79, 13)
        pdf.multi_cell(width, 14, f"Warning: {warning}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(29, 39, 48)

    pdf.set_y(pdf.h - PAGE_MARGIN - 34)
    pdf.set_fill_color(253, 243, 225)
    pdf.set_text_color(122, 79, 13)
    pdf.set_font("DejaVu", "B", 10)
    footer = f"{DISCLAIMER} Not a diagnosis" + (
        "; the heat map shows where the model looked, not where disease is." if heat_rgb is not None else "."
    )
    pdf.multi_cell(width, 14, footer, fill=True, padding=6)
    return bytes(pdf.output())


def _headline(case: Case) -> str:
    return "Not assessed: no answer for this picture" if case.withheld else decision_words(case.prediction)


def _facts(case: Case, context: ReportContext) -> list[str]:
    model = f"Model: {context.model_name} · model file SHA-256 {context.model_sha256[:16]}…"
    if case.withheld:  # no probability, threshold, band or promise: nothing was answered
        return [f"Why: {case.withheld}", model]
    prediction = case.prediction
    low, high = prediction.band
    sentence = promise_sentence(case.verdict.decision, context.promise) if case.verdict else None
    return [
        f"Probability of pneumonia: {probability_words(prediction)} (calibrated for this operating point)",
        f"Operating point: {operating_point_label(context.operating_point)}, threshold {prediction.threshold:.1%}",
        *([sentence] if sentence else []),
        f"Referral band: {low:.1%} – {high:.1%} (a result inside it is referred to a radiologist: the model cannot tell)",
        model,
    ]


def _png(array: np.ndarray) -> io.BytesIO:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    buffer.seek(0)
    return buffer
