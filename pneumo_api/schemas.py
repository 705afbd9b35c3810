"""Response bodies (they document the API in /openapi.json)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Answer(BaseModel):
    """Exactly the ``predict`` command line's record for one file."""

    file: str
    label: str | None = Field(
        None,
        description="NORMAL or PNEUMONIA, the binary verdict at the threshold; null when the film is clearly not a chest X-ray",
    )
    decision: Literal["NORMAL", "PNEUMONIA", "REFER"] | None = Field(
        None,
        description="the answer to act on: REFER inside the referral band (needs a radiologist); null without a verdict",
    )
    probability: float | None = Field(None, description="calibrated P(PNEUMONIA); null when no verdict is given")
    logit: float | None = Field(None, description="the model's raw logit, before any temperature; null without a verdict")
    threshold: float | None = None
    referral_band: list[float] | None = Field(None, description="[low, high): probabilities referred")
    operating_point: str | None = Field(None, description="validation, site:NAME or manual")
    promise: str | None = Field(
        None, description="the site profile's promise behind the decision, in one sentence (only at a site operating point)"
    )
    warnings: list[str] | None = None
    error: str | None = Field(None, description="why the file could not be read (then no other field but file)")


class PredictResponse(BaseModel):
    model: str
    operating_point: str
    results: list[Answer]


class ExplainResponse(BaseModel):
    model: str
    operating_point: str
    result: Answer
    method: str
    explained_class: str
    overlay_png_base64: str | None = Field(None, description="the heat map over the film, 224 × 224 PNG")
    map: list[list[float]] | None = Field(None, description="the heat map averaged down to 28 × 28, values in [0, 1]")


class ModelInfo(BaseModel):
    name: str
    model_sha256: str
    input_size: int
    runtime: str
    operating_point: str
    threshold: float
    temperature: float
    metrics: dict[str, dict[str, float]]
    promise: dict[str, float | int] | None = Field(
        None,
        description=(
            "at a site operating point: one-sided bounds on the site's next `next_films` films, each holding with "
            "probability `confidence` (at least: sensitivity, specificity, decided_sensitivity, decided_specificity; "
            "at most: referred, missed_by_normal, normal_called_pneumonia)"
        ),
    )


class Health(BaseModel):
    status: str
