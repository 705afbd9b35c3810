"""The served model, ready to answer: P(PNEUMONIA) at an operating point, its warnings and its heat maps.

Use :class:`Predictor` everywhere a model answers (CLI, app, REST API, benchmarks). It loads a model directory
safely once, runs its serving graph on a runtime of :mod:`pneumo_core.serving.runtimes`, and applies the temperature
and threshold of the operating point: the model's validation one or a site profile's.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from pneumo_core import CLASS_NAMES
from pneumo_core.common.logits import sigmoid
from pneumo_core.common.network_outputs import LastBlock
from pneumo_core.common.preprocess import CANONICAL_SIZE, canonicalize
from pneumo_core.config import DECODE_THREADS
from pneumo_core.serving import cams
from pneumo_core.serving.answers import Case, Prediction, default_band
from pneumo_core.serving.decode import ImageDecodeError, decode_upload
from pneumo_core.serving.ood import FeatureDensity, ood_assessment
from pneumo_core.serving.runtimes import BATCH_SIZE, Network, load_network
from pneumo_core.store.mlflow_registry import serving_directory
from pneumo_core.store.model_dir import ModelLoadError, read_metadata
from pneumo_core.store.profiles import ProfileError, SiteProfile, active_profile, load_profile

log = logging.getLogger(__name__)

LOAD_ATTEMPTS = 3
"""A load that failed in a way a promotion can cause (it read one model's metadata and then found the directory
swapped: a file missing or not matching its SHA-256) starts again, up to this many times; a damaged model fails
every time and its error is raised. Lasting failures are raised at once."""


class Predictor:
    """The served model, ready to answer: ``Predictor.load()`` then ``classify`` / ``predict_canonical``.

    Its operating point (temperature, threshold and referral band) is the model's validation one, or a site profile's
    (:mod:`pneumo_core.store.profiles`), or a threshold given by hand; :attr:`operating_point` names it:
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
        self.fitted_band: tuple[float, float] | None = None  # None: the default band around the threshold
        if threshold is not None:
            self.threshold, self.operating_point = float(threshold), "manual"
        elif profile:
            self.threshold, self.operating_point = profile.threshold, profile.operating_point
            self.fitted_band = profile.band
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
            except ModelLoadError as error:
                if not error.transient:
                    raise  # a lasting problem (no model, no runtime, an unknown operating point): say it at once
                time.sleep(0.05)  # perhaps a promotion swapped the directory mid-load
        return cls._load_once(directory, threshold, runtime, operating_point)  # still failing: raised here

    @classmethod
    def _load_once(cls, directory: Path, threshold: float | None, runtime: str, operating_point: str | None) -> Predictor:
        metadata = read_metadata(directory)
        profile = _profile_for(directory, operating_point)
        network = load_network(directory, metadata, runtime)
        return cls(network, metadata, threshold, FeatureDensity.load(directory), profile)

    @property
    def runtime(self) -> str:
        return self.network.runtime

    @property
    def answer_key(self) -> str:
        """Everything that changes an answer, as one string: the model file, the runtime (int8 and float32 differ),
        the operating point, threshold, temperature and band, and the not-an-X-ray limit. Answers kept under
        another key are stale."""
        limit = self.density.limit if self.density else None
        parts = (self.metadata.get("model_sha256"), self.runtime, self.operating_point, self.threshold, self.temperature)
        return "|".join(str(part) for part in (*parts, *self.band, limit))

    @property
    def promise(self) -> dict[str, Any] | None:
        """The site profile's promise about the site's next films, when the profile sets the operating point."""
        return self.profile.promise or None if self.profile and self.operating_point == self.profile.operating_point else None

    @property
    def band(self) -> tuple[float, float]:
        """The referral band ``[low, high)`` of the operating point (a site profile's, else the default around the
        threshold)."""
        return self.fitted_band if self.fitted_band is not None else default_band(self.threshold)

    def warm_up(self) -> None:
        """Run both serving graphs once, so the first visitor does not wait for their compilation."""
        blank = np.zeros((1, CANONICAL_SIZE, CANONICAL_SIZE), np.uint8)
        self.network.forward_with_blocks(blank)
        self.network.masked_logits(blank[0], np.ones((1, self.input_size, self.input_size), np.float32))

    def forward(self, canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits ``(N,)``, features ``(N, 5 C)``: :func:`~pneumo_core.common.network_outputs.film_features`) for
        ``(N, 224, 224)`` uint8 canonical images."""
        return self.network.forward(canonical)

    def explain(
        self,
        canonical: np.ndarray,
        classes: list[str],
        method: str = cams.GRADCAM,
        blocks: list[LastBlock] | None = None,
    ) -> np.ndarray:
        """Heat maps ``(N, size, size)`` in [0, 1] for ``(N, 224, 224)`` uint8 canonical images, each the evidence for
        ``classes[i]`` (NORMAL or PNEUMONIA), by a method of :data:`pneumo_core.serving.cams.METHODS`, all on the serving
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
        return [Prediction(float(p), self.threshold, float(z), self.fitted_band) for p, z in zip(probabilities, logits)]

    def classify(self, named_payloads: list[tuple[str, bytes]], with_maps: bool = False) -> list[Case]:
        """Decode and classify (name, file bytes) pairs in batches; unreadable files get a reason.

        The next batch is decoded (:data:`~pneumo_core.config.DECODE_THREADS` threads) while the current one runs
        through the model. With ``with_maps``, each case also keeps, from the same forward pass, what its heat maps are
        computed from (:meth:`explain`).
        """
        batches = [named_payloads[start : start + self.batch_size] for start in range(0, len(named_payloads), self.batch_size)]
        cases: list[Case] = []
        with ThreadPoolExecutor(max_workers=DECODE_THREADS) as pool:
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
            canonical = np.stack([decoded[i].canonical for i in good])
            if with_maps:
                logits, features, blocks = self.network.forward_with_blocks(canonical)
            else:
                logits, features = self.network.forward(canonical)
                blocks = [None] * len(good)
            distances, turned = [None] * len(good), [None] * len(good)
            if self.density:  # each film also turned 180°: an upside-down film lies closer turned (serving.ood)
                distances = self.density.distances(features)
                turned = self.density.distances(self.network.forward(np.ascontiguousarray(canonical[:, ::-1, ::-1]))[1])
            answers = zip(good, canonical, self._predictions(logits), distances, turned, blocks)
            for i, image, prediction, distance, turned_distance, block in answers:
                upload = decoded[i]
                warnings, withheld = ood_assessment(upload.colourfulness, distance, self.density, turned_distance)
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


UNEXPECTED_FILE = "The file could not be read: its data is malformed in a way this app does not handle."


class DecodedUpload(NamedTuple):
    """What a classified file keeps of its decoding: the canonical view and what the checks and the app need (the
    full-size pixels are freed as soon as the canonical view exists)."""

    canonical: np.ndarray
    colourfulness: float
    dicom_fields: dict[str, str]


_DECODING = threading.BoundedSemaphore(DECODE_THREADS)
"""Files decoded at once in this process, whatever the number of requests: a small file can need a large image's
memory, so decoding, not requests, is what is bounded."""


def _decode_upload(payload: bytes) -> DecodedUpload | ImageDecodeError:
    """One file's canonical view, or why it has none: the per-file boundary, so that no file, however crafted, costs
    the other files of its batch their answers."""
    try:
        with _DECODING:
            upload = decode_upload(payload)
            return DecodedUpload(canonicalize(upload.gray), upload.colourfulness, upload.dicom_fields)
    except ImageDecodeError as error:
        return error
    except Exception as error:  # noqa: BLE001 - a decoder library's own failure: this file's answer, not the batch's
        log.warning("a file could not be decoded (%s)", type(error).__name__)  # never the content: it is patient data
        return ImageDecodeError(UNEXPECTED_FILE)
