"""A one-page PNG report for a classified case: image, overlay, numbers, model version, disclaimer."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pneumo_core import DISCLAIMER
from pneumo_core.predict import Prediction

PANEL = 448


def case_report_png(
    name: str,
    canonical: np.ndarray,
    overlay_rgb: np.ndarray,
    prediction: Prediction,
    method: str,
    model_name: str,
    operating_point: str,
) -> bytes:
    width, height = 2 * PANEL + 60, PANEL + 260
    page = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    title, body, small = (ImageFont.load_default(size) for size in (26, 18, 14))
    draw.text((20, 16), "Chest X-ray classification — case report", fill="#1d2730", font=title)
    page.paste(Image.fromarray(canonical).convert("RGB").resize((PANEL, PANEL)), (20, 60))
    page.paste(Image.fromarray(overlay_rgb).resize((PANEL, PANEL)), (PANEL + 40, 60))
    draw.text((20, PANEL + 64), "Image (as the model sees it)", fill="#56636e", font=small)
    draw.text((PANEL + 40, PANEL + 64), f"{method} overlay", fill="#56636e", font=small)
    verdict = f"Uncertain (leaning {prediction.label})" if prediction.uncertain else prediction.label
    lines = [
        f"File: {name}",
        f"Result: {verdict}     P(pneumonia) = {prediction.probability:.3f}     threshold = {prediction.threshold:.3f}",
        f"Model: {model_name}     operating point: {operating_point}",
        f"Generated: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}",
    ]
    for i, line in enumerate(lines):
        draw.text((20, PANEL + 92 + 26 * i), line, fill="#1d2730", font=body)
    draw.rectangle((20, height - 50, width - 20, height - 16), fill="#fdf3e1")
    draw.text((30, height - 44), DISCLAIMER + " Not a diagnosis.", fill="#7a4f0d", font=body)
    buffer = io.BytesIO()
    page.save(buffer, format="PNG")
    return buffer.getvalue()
