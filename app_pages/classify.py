"""Classify: upload X-rays (or try an example) → label, probability, Grad-CAM, report."""

from __future__ import annotations

import hashlib
import time
from contextlib import nullcontext
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pandas as pd
import streamlit as st

from pneumo_core.common.decisions import promise_sentence
from pneumo_core.config import MAX_FILES_PER_REQUEST as PAGE
from pneumo_core.config import PROJECT_ROOT
from pneumo_core.operations.monitoring_store import record as record_answers
from pneumo_core.serving.answers import Case
from pneumo_core.serving.cams import METHODS, SCORECAM
from pneumo_core.serving.overlay import COLORMAPS, overlay
from pneumo_core.visualize.scale import probability_scale
from ui.report import FONT_MISSING, ReportContext, case_report_pdf, font_dir
from ui.resources import Served, served_model, shadow_challenger, start_loading
from ui.widgets import (
    decision_words,
    operating_point_label,
    probability_words,
    verdict_text,
)

ANSWER = "the answer"
# Films one session may have classified at once (in pages of PAGE): enough for a clinic's morning, and a bound on what
# one visitor can ask of a shared demo.
MAX_SESSION_FILES = 10 * PAGE
EXAMPLES = sorted((PROJECT_ROOT / "examples").glob("*.jpeg"))


def example_label(path: Path, index: int) -> str:
    """A readable button name from an example's file name: "Normal film 1", "Pneumonia, viral"."""
    if path.stem.startswith("normal"):
        return f"Normal film {index}"
    return "Pneumonia, viral" if "virus" in path.stem else "Pneumonia, bacterial"


st.title("Classify a chest X-ray")
st.markdown(
    "Upload frontal pediatric chest radiographs (JPEG, PNG, BMP, TIFF or DICOM). Each image gets a label, "
    "the model's probability of pneumonia and a heat map of the regions that drove the answer. "
    "Images stay in this browser session's memory; nothing is stored."
)

loading = start_loading()  # does not wait: the model finishes loading while files are chosen
if loading.problem:
    st.error(f"No model is available, so nothing can be classified. {loading.problem}")
    st.stop()

with st.sidebar:
    st.subheader("Explanation")
    method = st.selectbox(
        "Method",
        METHODS,
        key="cam_method",
        help="Grad-CAM and Grad-CAM++ come with the answer; ScoreCAM masks the film 32 times and takes about a second.",
    )
    opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.4, 0.05, key="cam_opacity")
    colormap = st.selectbox("Colour map", list(COLORMAPS), key="cam_colormap")
    evidence = st.radio(
        "Show the evidence for",
        [ANSWER, "PNEUMONIA", "NORMAL"],
        key="cam_class",
        help="Each heat map explains one class. For a NORMAL answer, the PNEUMONIA map is mostly cold, which is itself "
        "informative.",
    )

# No type filter: the uploader's own rejection is easy to miss; every file reaches pneumo_core.serving.decode, whose reason
# ("This is a PDF document, not an image…") is shown on the page with the file's name. Clearing the batch gives the
# uploader a new key, which is the one way Streamlit empties it.
uploads = st.file_uploader(
    "Chest X-ray images",
    accept_multiple_files=True,
    key=f"uploads_{st.session_state.get('upload_round', 0)}",
    help=f"JPEG, PNG, BMP, TIFF or DICOM; anything else is listed with the reason it cannot be read. Up to "
    f"{MAX_SESSION_FILES} files, classified {PAGE} at a time.",
)


def clear_batch() -> None:
    """Empty the uploader and forget the example, every answer and every heat map of this session."""
    st.session_state["upload_round"] = st.session_state.get("upload_round", 0) + 1
    for key in ("example", "cases", "answered_at", "cams", "film_page"):
        st.session_state.pop(key, None)


st.caption("No image at hand? Try an example (CC BY 4.0, Kermany et al. 2018; never used to train the model):")
example_columns = st.columns(2)  # two by two: each name stays whole on a narrow screen with the sidebar open
normal_count = 0
for index, path in enumerate(EXAMPLES):
    normal_count += path.stem.startswith("normal")
    label = example_label(path, normal_count)
    if example_columns[index % 2].button(label, key=f"example_{path.name}", width="stretch", help=path.name):
        st.session_state["example"] = path.name

named_payloads: list[tuple[str, bytes]] = [(f.name, f.getvalue()) for f in (uploads or [])]
if len(named_payloads) > MAX_SESSION_FILES:
    st.warning(
        f"{len(named_payloads)} files were added; the first {MAX_SESSION_FILES} are classified. Clear the batch, or "
        "remove files, to classify the others."
    )
    named_payloads = named_payloads[:MAX_SESSION_FILES]
if not named_payloads and st.session_state.get("example"):
    example = PROJECT_ROOT / "examples" / st.session_state["example"]
    named_payloads = [(example.name, example.read_bytes())]
if not named_payloads:
    st.stop()
st.button(
    "Clear all films", on_click=clear_batch, icon=":material/delete_sweep:", help="Remove every film and its answer at once."
)

served, problem = served_model(loading)
if served is None:
    st.error(f"No model is available, so nothing can be classified. {problem}")
    st.stop()

# Results live in this session only, keyed by the files' content and everything that changes an answer (sliders
# re-render without re-running the model; a promotion, a quantize or a new site profile answers again).
cache: dict[str, Case] = st.session_state.setdefault("cases", {})
times: dict[str, str] = st.session_state.setdefault("answered_at", {})  # when each film was answered (UTC)
answering = served.predictor.answer_key.encode()
digests = [hashlib.sha256(answering + payload).hexdigest() for _, payload in named_payloads]
missing = list(dict((d, item) for d, item in zip(digests, named_payloads) if d not in cache).items())
if missing:
    progress = st.progress(0.0)
    for start in range(0, len(missing), PAGE):
        page = missing[start : start + PAGE]
        waiting = len(missing) - start - len(page)
        progress.progress(
            start / len(missing),
            text=f"Classifying films {start + 1}–{start + len(page)} of {len(missing)}"
            + (f"; {waiting} waiting…" if waiting else "…"),
        )
        started = time.perf_counter()
        answered = served.predictor.classify([item for _, item in page], with_maps=True)
        seconds = time.perf_counter() - started
        record_answers(answered, served.predictor, "app", seconds)  # no image, no file name
        if (shadow := shadow_challenger()) is not None:
            shadow.submit(answered, served.predictor, seconds, "app")  # scored afterwards, in the background
        answered_at = datetime.now(UTC).isoformat(timespec="seconds")
        for (digest, _), case in zip(page, answered):
            cache[digest] = case
            times[digest] = answered_at
    progress.empty()
cases = [replace(cache[d], name=name) for d, (name, _) in zip(digests, named_payloads)]

cams: dict[tuple[str, str, str], object] = st.session_state.setdefault("cams", {})
for digest in [d for d in cache if d not in digests]:  # a removed file is forgotten, image and maps alike
    del cache[digest]
    times.pop(digest, None)
for key in [k for k in cams if k[0] not in digests]:
    del cams[key]


def explained_class(case: Case, evidence: str) -> str:
    """The class a heat map shows: the answer's, or the one chosen in the sidebar."""
    return case.prediction.label if evidence == ANSWER else evidence


def cam_for(served: Served, cams: dict, digest: str, case: Case, method: str, evidence: str):
    """The map for the chosen method and class, computed once per film from what came with its answer."""
    target = explained_class(case, evidence)
    key = (digest, method, target)
    if key not in cams:
        with st.spinner(f"Computing {method} for {target}…") if method == SCORECAM else nullcontext():
            cams[key] = served.predictor.explain(case.canonical[None], [target], method, [case.block])[0]
    return cams[key]


def results_table(served: Served, cases: list[Case], answered_at: list[str]) -> pd.DataFrame:
    """One row per file, for one film as for many: no label for a failed file or a withheld verdict, and why; each
    with the time its answer was given."""
    rows = []
    for c, when in zip(cases, answered_at):
        verdict = c.verdict
        low, high = c.prediction.band if c.prediction else (None, None)
        rows.append(
            {
                "file": c.name,
                "decision": decision_words(verdict) if verdict else "",
                "reason no label": c.error or c.withheld or "",
                "P(pneumonia)": f"{verdict.probability:.4f}" if verdict else "",
                "threshold": f"{c.prediction.threshold:.4f}" if c.prediction else "",
                "binary call at the threshold": verdict.label if verdict else "",
                "referral band": f"{low:.4f}-{high:.4f}" if c.prediction else "",
                "operating point": served.predictor.operating_point,
                "model": served.metadata.get("name", "unnamed"),
                "warnings": " | ".join(c.warnings),
                "time (UTC)": when,
            }
        )
    return pd.DataFrame(rows)


def report_button(served: Served, case: Case, heat, digest: str, method: str, evidence: str, position: int) -> None:
    """The one-page PDF report of the film at ``position`` among the files, drawn only when clicked."""
    if font_dir() is None:
        st.caption(FONT_MISSING)
        return
    context = ReportContext(
        served.metadata.get("name", "unnamed"),
        served.metadata.get("model_sha256", "?"),
        served.predictor.operating_point,
        method,
        served.predictor.promise,
    )
    st.download_button(
        "Download case report (PDF)",
        partial(case_report_pdf, case, heat, context, explained_class(case, evidence) if case.verdict else None),
        f"{Path(case.name).stem}_report.pdf",
        "application/pdf",
        key=f"report_{position}_{digest}",
        on_click="ignore",
    )


table = results_table(served, cases, [times.get(d, "") for d in digests])
st.subheader("Results")
# On the page: what a reader needs, the decision in full (its words were cut in a narrow column); the CSV has it all.
SHOWN = {  # widths in pixels: the longest decision ("REFER: have a radiologist read ... leans PNEUMONIA") whole
    "file": st.column_config.TextColumn("file", width=240),
    "decision": st.column_config.TextColumn("decision", width=500),
    "P(pneumonia)": st.column_config.TextColumn("P(pneumonia)", width=110),
    "reason no label": st.column_config.TextColumn("reason no label", width=360),
    "warnings": st.column_config.TextColumn("warnings", width=300),
}
st.dataframe(table, hide_index=True, width="stretch", column_config=SHOWN, column_order=list(SHOWN))
# No rerun on a download: a rerun would replace the reports' deferred files while another click may be on its way.
st.download_button("Download results (CSV)", table.to_csv(index=False), "pneumo_results.csv", "text/csv", on_click="ignore")

first_of = {}  # each film's first file: byte-identical files are one film, answered alike, each with its section
for position, (digest, (name, _)) in enumerate(zip(digests, named_payloads)):
    first_of.setdefault(digest, (position, name))
shown = list(enumerate(zip(digests, cases)))
if len(shown) > PAGE:
    pages = [f"Films {start + 1}–{min(start + PAGE, len(shown))}" for start in range(0, len(shown), PAGE)]
    st.divider()
    chosen = st.segmented_control(
        f"All {len(shown)} films are in the table above; heat maps and reports, {PAGE} at a time:",
        pages,
        default=pages[0],
        key="film_page",
    )
    first = pages.index(chosen) * PAGE if chosen in pages else 0
    shown = shown[first : first + PAGE]
for position, (digest, case) in shown:
    st.divider()
    st.subheader(case.name)
    if first_of[digest][0] != position:
        st.info(f"The same film as {first_of[digest][1]} (the files are byte-identical): the same answer.")
    if case.error:
        st.error(f"Not classified: {case.error}")
        continue
    if case.withheld:
        st.warning(f"**Not assessed.** {case.withheld} No NORMAL/PNEUMONIA answer is given for it.", icon=":material/block:")
        st.image(case.canonical, caption="The image as received (grayscale)", width=320)
        report_button(served, case, None, digest, method, evidence, position)
        continue
    prediction = case.prediction
    for warning in case.warnings:
        st.warning(warning, icon=":material/report:")
    # The answer first, across the page (the scale stays legible on a narrow screen), then the film and its map.
    st.markdown(f"### {verdict_text(prediction)}")
    st.markdown(f"Probability of pneumonia: **{probability_words(prediction)}**")
    st.plotly_chart(
        probability_scale(prediction), width="stretch", config={"displayModeBar": False}, key=f"scale_{position}_{digest}"
    )
    left, right = st.columns(2)
    heat = overlay(case.canonical, cam_for(served, cams, digest, case, method, evidence), opacity, colormap)
    left.image(case.canonical, caption="X-ray (as the model sees it)", width="stretch")
    right.image(heat, caption=f"{method}: evidence for {explained_class(case, evidence)}", width="stretch")
    low, high = prediction.band
    promised = promise_sentence(prediction.decision, served.predictor.promise)
    st.caption(
        f"Operating point: {operating_point_label(served.predictor.operating_point)} "
        f"(threshold {prediction.threshold:.1%}). Shaded: the referral band, {low:.1%} to {high:.1%}. Below it a film "
        "is called NORMAL, from its top PNEUMONIA; inside it the film is referred for a radiologist to read: its lower "
        "part holds films that score like the pneumonias a NORMAL call would miss, its upper part films that score "
        "like normal films a PNEUMONIA call would flag."
        + (f" {promised}" if promised else "")
        + f" The heat map shows where the model found evidence for {explained_class(case, evidence)}"
        + (": for NORMAL that is normal-looking anatomy, not disease." if explained_class(case, evidence) == "NORMAL" else ".")
        + " It shows where the model looked, not where disease is."
    )
    if case.dicom_fields:
        with st.expander("DICOM header fields (may identify the patient)"):
            st.table(pd.DataFrame(case.dicom_fields.items(), columns=["field", "value"]))
    report_button(served, case, heat, digest, method, evidence, position)
