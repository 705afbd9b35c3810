"""Serving: a model directory's network, ready to answer with P(PNEUMONIA), its warnings and its heat maps.

Use :class:`Predictor` everywhere a model answers (CLI, app, benchmarks). It
loads the model directory safely once, runs its serving graph on one of two
runtimes (LiteRT when the directory has a TFLite copy, else compiled
TensorFlow), and applies the calibration temperature and the operating threshold
stored in the metadata. This module imports neither TensorFlow nor Keras: with
the LiteRT runtime, the app answers without loading them at all.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import CLASS_NAMES, cams, lite
from .config import SERVING_RUNTIMES
from .decode import DecodedImage, ImageDecodeError, decode_image, decode_upload
from .logits import log_odds, sigmoid
from .model_registry import serving_directory
from .ood import FeatureDensity, ood_assessment
from .preprocess import CANONICAL_SIZE, STRETCH, canonicalize, intensity_mode, model_view
from .registry import LITE_COPIES, ModelLoadError, load_keras_model, load_lite_model, read_metadata
from .site import ProfileError, SiteProfile, active_profile, load_profile

BATCH_SIZE = 32
"""Images per call: decoded together, and run together by the TensorFlow runtime."""
LOAD_ATTEMPTS = 3
"""A load that failed (e.g. it read one model's metadata and then found the directory swapped by a promotion)
starts again, up to this many times; a damaged model fails every time and its error is raised."""
RUNTIMES = SERVING_RUNTIMES
"""``auto`` serves, when LiteRT is installed, the int8 TFLite copy if its check passed (:mod:`pneumo_core.quantize`),
else the float32 TFLite copy if there is one; else the compiled TensorFlow graph."""

UNCERTAIN_LOG_ODDS = 1.0
"""A probability whose log-odds lie within this distance of the threshold's is reported as uncertain: odds within a
factor e of the threshold's. For served-v2 (threshold 0.082) that is P between 0.032 and 0.195, which held 3.1% of
validation images, with accuracy 0.61 there against 0.99 outside (a fixed ±0.10 band flagged every NORMAL call)."""


@dataclass(frozen=True)
class Prediction:
    probability: float  # calibrated P(PNEUMONIA)
    threshold: float
    logit: float

    @property
    def label(self) -> str:
        return CLASS_NAMES[int(self.probability >= self.threshold)]

    @property
    def uncertain_band(self) -> tuple[float, float]:
        """The probabilities around the threshold reported as uncertain (see :data:`UNCERTAIN_LOG_ODDS`)."""
        centre = log_odds(min(max(self.threshold, 1e-6), 1 - 1e-6))
        low, high = sigmoid(centre + np.array([-UNCERTAIN_LOG_ODDS, UNCERTAIN_LOG_ODDS]))
        return float(low), float(high)

    @property
    def uncertain(self) -> bool:
        low, high = self.uncertain_band
        return low < self.probability < high


@dataclass(frozen=True)
class Case:
    """One input file's outcome: its canonical image and prediction, or the reason it has none."""

    name: str
    canonical: np.ndarray | None = None
    prediction: Prediction | None = None
    error: str | None = None
    warnings: tuple[str, ...] = ()
    dicom_fields: dict[str, str] = field(default_factory=dict)
    block: cams.LastBlock | None = None  # what the heat maps are computed from, when classified with_maps
    distance: float | None = None  # feature distance to the training X-rays (see pneumo_core.ood), when known
    withheld: str | None = None  # why no verdict is given: clearly not a chest X-ray (see pneumo_core.ood)

    @property
    def verdict(self) -> Prediction | None:
        """The prediction a person may be shown: None for an unreadable file or a withheld verdict."""
        return None if self.withheld else self.prediction


class Network(Protocol):
    """A serving graph on some runtime (:class:`~pneumo_core.network.KerasNetwork`, :class:`~pneumo_core.lite.LiteNetwork`)."""

    runtime: str  # one of RUNTIMES other than "auto"

    def forward(self, canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def forward_with_blocks(self, canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[cams.LastBlock]]: ...

    def masked_logits(self, canonical: np.ndarray, masks: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class ModelViewNetwork:
    """A network whose model sees canonical films through :func:`~pneumo_core.preprocess.model_view` (a model
    trained with ``--intensity equalize``): every graph it runs gets the films as the model saw them in training."""

    inner: Network
    intensity: str

    @property
    def runtime(self) -> str:
        return self.inner.runtime

    def forward(self, canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.inner.forward(model_view(canonical, self.intensity))

    def forward_with_blocks(self, canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[cams.LastBlock]]:
        return self.inner.forward_with_blocks(model_view(canonical, self.intensity))

    def masked_logits(self, canonical: np.ndarray, masks: np.ndarray) -> np.ndarray:
        return self.inner.masked_logits(model_view(canonical[np.newaxis], self.intensity)[0], masks)


def with_model_view(network: Network, intensity: str) -> Network:
    """``network`` as a model of that intensity mode must be run (unchanged for ``stretch``)."""
    return network if intensity == STRETCH else ModelViewNetwork(network, intensity)


def load_network(directory: Path, metadata: dict[str, Any], runtime: str = "auto") -> Network:
    """The directory's serving graph on the chosen runtime (see :data:`RUNTIMES`), fed as its model was trained."""
    if runtime not in RUNTIMES:
        raise ValueError(f"Unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}.")
    try:
        intensity = intensity_mode(metadata)
    except ValueError as error:  # a model directory from a newer version of this code
        raise ModelLoadError(f"{directory}: {error} Update pneumo to serve this model.") from None
    if runtime == "auto":
        runtime = auto_runtime(metadata)
    if runtime in LITE_COPIES:
        if not lite.available():
            raise ModelLoadError("The TFLite runtime is not installed (pip install ai-edge-litert).")
        network: Network = lite.LiteNetwork(load_lite_model(directory, metadata, runtime), runtime)
    else:
        from .network import KerasNetwork

        network = KerasNetwork(load_keras_model(directory, metadata), int(metadata["input_size"]), BATCH_SIZE)
    return with_model_view(network, intensity)


def auto_runtime(metadata: dict[str, Any]) -> str:
    """The runtime ``auto`` stands for with this model's metadata (see :data:`RUNTIMES`)."""
    if not lite.available():
        return "tensorflow"
    if metadata.get("int8_check", {}).get("serves") and LITE_COPIES["tflite-int8"][1] in metadata:
        return "tflite-int8"
    return "tflite" if LITE_COPIES["tflite"][1] in metadata else "tensorflow"


class Predictor:
    """The served model, ready to answer: ``Predictor.load()`` then ``classify`` / ``predict_canonical``.

    Its operating point (temperature and threshold) is the model's validation one, or a site profile's
    (:mod:`pneumo_core.site`), or a threshold given by hand; :attr:`operating_point` names it:
    ``"validation"``, ``"site:NAME"`` or ``"manual"``.
    """

    batch_size = BATCH_SIZE

    def __init__(
        self,
        network: Network,
        metadata: dict[str, Any],
        threshold: float | None = None,
        density: FeatureDensity | None = None,
        profile: SiteProfile | None = None,
    ):
        self.network = network
        self.metadata = metadata
        self.input_size = int(metadata["input_size"])
        self.profile = profile
        self.temperature = profile.temperature if profile else float(metadata.get("temperature", 1.0))
        if threshold is not None:
            self.threshold, self.operating_point = float(threshold), "manual"
        elif profile:
            self.threshold, self.operating_point = profile.threshold, profile.operating_point
        else:
            self.threshold, self.operating_point = float(metadata["threshold"]), "validation"
        self.density = density

    @classmethod
    def load(
        cls,
        model_dir: Path | None = None,
        threshold: float | None = None,
        runtime: str = "auto",
        operating_point: str | None = None,
    ) -> Predictor:
        """Load a model directory (default: the served model, or the registry version ``$PNEUMO_MODEL_URI`` names)
        on a runtime (see :data:`RUNTIMES`).

        ``operating_point``: ``None`` (default) uses the directory's active site profile if it has one, else the
        validation threshold; ``"validation"`` or ``"site:NAME"`` choose explicitly.
        """
        directory = Path(model_dir) if model_dir else serving_directory()
        for _ in range(LOAD_ATTEMPTS - 1):
            try:
                return cls._load_once(directory, threshold, runtime, operating_point)
            except ModelLoadError:
                time.sleep(0.05)  # perhaps a promotion swapped the directory mid-load
        return cls._load_once(directory, threshold, runtime, operating_point)  # a lasting problem raises here

    @classmethod
    def _load_once(cls, directory: Path, threshold: float | None, runtime: str, operating_point: str | None) -> Predictor:
        metadata = read_metadata(directory)
        profile = _profile_for(directory, operating_point)
        network = load_network(directory, metadata, runtime)
        return cls(network, metadata, threshold, FeatureDensity.load(directory), profile)

    @property
    def runtime(self) -> str:
        return self.network.runtime

    def warm_up(self) -> None:
        """Run both serving graphs once, so the first visitor does not wait for their compilation."""
        blank = np.zeros((1, CANONICAL_SIZE, CANONICAL_SIZE), np.uint8)
        self.network.forward_with_blocks(blank)
        self.network.masked_logits(blank[0], np.ones((1, self.input_size, self.input_size), np.float32))

    def forward(self, canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits ``(N,)``, pooled features ``(N, 1024)``) for ``(N, 224, 224)`` uint8 canonical images."""
        return self.network.forward(canonical)

    def explain(
        self,
        canonical: np.ndarray,
        classes: list[str],
        method: str = cams.GRADCAM,
        blocks: list[cams.LastBlock] | None = None,
    ) -> np.ndarray:
        """Heat maps ``(N, size, size)`` in [0, 1] for ``(N, 224, 224)`` uint8 canonical images, each the evidence for
        ``classes[i]`` (NORMAL or PNEUMONIA), by a method of :data:`pneumo_core.cams.METHODS`, all on the serving
        runtime. Pass the images' ``blocks`` when they came with the answers (``classify(..., with_maps=True)``);
        Grad-CAM and Grad-CAM++ then need no further pass, ScoreCAM one batch of masked passes per image."""
        if method not in cams.METHODS:
            raise ValueError(f"Unknown method {method!r}; choose one of {', '.join(cams.METHODS)}.")
        if len(classes) != len(canonical):
            raise ValueError(f"{len(canonical)} images but {len(classes)} classes to explain.")
        signs = [cams.sign_of(name, CLASS_NAMES) for name in classes]
        blocks = blocks if blocks is not None else self.network.forward_with_blocks(canonical)[2]
        size = self.input_size
        if method == cams.GRADCAM:
            maps = [cams.gradcam(block, sign, size) for block, sign in zip(blocks, signs)]
        elif method == cams.GRADCAM_PLUS_PLUS:
            maps = [cams.gradcam_plus_plus(block, sign, size) for block, sign in zip(blocks, signs)]
        else:
            maps = []
            for image, block, sign in zip(canonical, blocks, signs):
                chosen = cams.scorecam_channels(block)
                masked = self.network.masked_logits(image, cams.scorecam_masks(block, chosen, size))
                maps.append(cams.scorecam(block, chosen, masked, sign, size))
        return np.stack(maps) if maps else np.zeros((0, size, size), np.float32)

    def logits_canonical(self, canonical: np.ndarray) -> np.ndarray:
        return self.forward(canonical)[0]

    def predict_canonical(self, canonical: np.ndarray) -> list[Prediction]:
        return self._predictions(self.logits_canonical(canonical))

    def _predictions(self, logits: np.ndarray) -> list[Prediction]:
        probabilities = sigmoid(logits / self.temperature)
        return [Prediction(float(p), self.threshold, float(z)) for p, z in zip(probabilities, logits)]

    def classify(self, named_payloads: list[tuple[str, bytes]], with_maps: bool = False) -> list[Case]:
        """Decode and classify (name, file bytes) pairs in batches; unreadable files get a reason.

        The next batch is decoded (two threads) while the current one runs through the model. With
        ``with_maps``, each case also keeps, from the same forward pass, what its heat maps are computed from
        (:meth:`explain`).
        """
        batches = [named_payloads[start : start + self.batch_size] for start in range(0, len(named_payloads), self.batch_size)]
        cases: list[Case] = []
        with ThreadPoolExecutor(max_workers=2) as pool:
            pending = [pool.submit(_decode_upload, payload) for _, payload in batches[0]] if batches else []
            for index, batch in enumerate(batches):
                decoded = [future.result() for future in pending]
                if index + 1 < len(batches):
                    pending = [pool.submit(_decode_upload, payload) for _, payload in batches[index + 1]]
                cases.extend(self._classify_decoded([name for name, _ in batch], decoded, with_maps))
        return cases

    def _classify_decoded(self, names: list[str], decoded: list, with_maps: bool) -> list[Case]:
        good = [i for i, item in enumerate(decoded) if not isinstance(item, ImageDecodeError)]
        cases = [
            Case(name, error=str(item)) if isinstance(item, ImageDecodeError) else None for name, item in zip(names, decoded)
        ]
        if good:
            canonical = np.stack([decoded[i][1] for i in good])
            if with_maps:
                logits, features, blocks = self.network.forward_with_blocks(canonical)
            else:
                logits, features = self.network.forward(canonical)
                blocks = [None] * len(good)
            distances = self.density.distances(features) if self.density else [None] * len(good)
            for i, image, prediction, distance, block in zip(good, canonical, self._predictions(logits), distances, blocks):
                upload = decoded[i][0]
                warnings, withheld = ood_assessment(upload.colourfulness, distance, self.density)
                cases[i] = Case(
                    names[i],
                    image,
                    prediction,
                    None,
                    warnings,
                    upload.dicom_fields,
                    block,
                    None if distance is None else float(distance),
                    withheld,
                )
        return cases


def answer_record(name: str, case: Case, operating_point: str) -> dict[str, Any]:
    """The one answer format of every entry point (CLI ``predict``, REST API): ``file``, ``label``, ``probability``,
    ``threshold``, ``operating_point`` and ``warnings`` when any; ``label`` and ``probability`` are null when the
    film is clearly not a chest X-ray; or ``file`` and ``error`` when it could not be read."""
    if case.error or case.prediction is None:
        return {"file": name, "error": case.error or "The file could not be classified."}
    verdict = case.verdict
    record: dict[str, Any] = {
        "file": name,
        "label": verdict.label if verdict else None,
        "probability": round(verdict.probability, 6) if verdict else None,
        "threshold": round(case.prediction.threshold, 6),
        "operating_point": operating_point,
    }
    if case.warnings:
        record["warnings"] = list(case.warnings)
    return record


def _profile_for(directory: Path, operating_point: str | None) -> SiteProfile | None:
    if operating_point is None:
        return active_profile(directory)
    if operating_point == "validation":
        return None
    if operating_point.startswith("site:"):
        try:
            return load_profile(directory, operating_point.removeprefix("site:"))
        except ProfileError as error:
            raise ModelLoadError(str(error)) from None
    raise ModelLoadError(f"Unknown operating point {operating_point!r}: use validation or site:NAME.")


def _decode_upload(payload: bytes) -> tuple[DecodedImage, np.ndarray] | ImageDecodeError:
    try:
        upload = decode_upload(payload)
    except ImageDecodeError as error:
        return error
    return upload, canonicalize(upload.gray)


def load_canonical_films(root: Path, files: list[str]) -> tuple[list[str], np.ndarray, list[str]]:
    """(readable file names, their canonical images ``(N, 224, 224)``, unreadable file names) for files under ``root``."""
    readable, images, unreadable = [], [], []
    for name in files:
        path = Path(root) / name
        canonical = decode_canonical(path.read_bytes()) if path.is_file() else None
        if isinstance(canonical, np.ndarray):
            readable.append(name)
            images.append(canonical)
        else:
            unreadable.append(name)
    stacked = np.stack(images) if images else np.zeros((0, CANONICAL_SIZE, CANONICAL_SIZE), np.uint8)
    return readable, stacked, unreadable


def decode_canonical(payload: bytes) -> np.ndarray | ImageDecodeError:
    try:
        return canonicalize(decode_image(payload))
    except ImageDecodeError as error:
        return error
