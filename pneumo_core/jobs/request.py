"""What a training run is asked to do: :class:`TrainConfig` and its :class:`Augmentation`.

Plain dataclasses without TensorFlow, so the Training page and ``train.py --help``
can build and check a configuration without loading it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

from pneumo_core.common.preprocess import STRETCH
from pneumo_core.config import MLFLOW_EXPERIMENT, locations, training_settings

ARCHITECTURE_NAMES = ("densenet121", "efficientnetv2b0")
"""The bases a run can train (the keys of :data:`pneumo_core.modeling.architectures.ARCHITECTURES`, named here without
TensorFlow)."""

SMOKE_OVERRIDES = {
    "img_size": 64,
    "batch_size": 8,
    "epochs": 1,
    "feature_views": 1,
    "fine_tune_epochs": 1,
    "scratch_schedule": "64:1:8",
    "head_units": 8,
}
SMOKE_IMAGES_PER_CLASS = {"train": 8, "val": 4, "test": 4}
"""What ``--smoke`` (the Training page's quick check) changes, where the caller kept the default."""


def _flag(default: float, help_text: str) -> Any:
    """A per-film augmentation with a value (0: off), which ``train.py`` offers as ``--NAME`` with this help."""
    return field(default=default, metadata={"flag": help_text})


@dataclass(frozen=True)
class Augmentation:
    """Random transforms applied to canonical images (values 0..255) during training.

    Defaults are the seed recipe: rotation ±15°, shifts ±10%, zoom ±10%,
    horizontal flip, brightness ×0.8–1.2. The rest (0 = off) imitate acquisition
    differences between sites: ``contrast`` is Keras's random contrast factor,
    ``gamma`` draws a per-image gamma exp(U(-gamma, gamma)), ``sharpness`` an
    unsharp-mask amount in U(-sharpness, sharpness) (negative = blur), and
    ``noise`` a per-image Gaussian noise standard deviation in U(0, noise) grey levels,
    ``crop`` zooms in by up to that fraction on each axis independently (a random
    resized crop: area down to (1 - crop)², aspect ratio changed), and ``equalize``
    blends each film with its histogram-equalised self by a weight in U(0, equalize).
    ``local_contrast`` blends each film with a CLAHE view of itself (contrast-limited adaptive histogram
    equalisation on 8 × 8 tiles, the local contrast processing some devices apply), clip limit U(1, local_contrast),
    weight U(0, 1); it must be 0 (off) or above 1. ``coarse_sharpness`` is an unsharp mask at a coarse scale
    (Gaussian σ log-uniform in 2-16 px) with an amount in U(-coarse_sharpness, coarse_sharpness), at most 1
    (-1: the blurred film): the large-scale enhancement or smoothing of a device's processing.
    ``spectrum_match`` filters each film so that its Fourier amplitude, band by radial-frequency band, moves towards
    another training film's of the batch, by a power in U(0, spectrum_match), at most 1 (1: the other's amplitude in
    every band; the phase, where the structures are, is the film's own): the sharpening or smoothing at every scale
    and the noise level a device's processing leaves, borrowed from the training films, the device-marked ones among
    them (in the spirit of Fourier-based domain generalisation, Xu et al. 2021, without its mottled textures).
    ``mixup`` (Zhang et al. 2018) is the Beta(mixup, mixup) concentration: each film is blended with another of its
    batch, labels alike, the film's own weight being the larger of the two.
    """

    rotation_deg: float = 15.0
    shift: float = 0.1
    zoom: float = _flag(0.1, "random zoom in or out by up to this fraction, aspect kept (the seed's 0.1; 0: off)")
    horizontal_flip: bool = True
    brightness: tuple[float, float] = (0.8, 1.2)
    contrast: float = _flag(0.0, "random contrast factor (0: off)")
    gamma: float = _flag(0.0, "random gamma exp(U(-g, g)) (0: off)")
    sharpness: float = _flag(0.0, "random unsharp mask amount, negative blurs (0: off)")
    noise: float = _flag(0.0, "max Gaussian noise std in grey levels (0: off)")
    crop: float = _flag(0.0, "random resized crop: zoom in by up to this fraction per axis (0: off)")
    equalize: float = _flag(0.0, "blend with the equalised film, weight U(0, e) (0: off)")
    local_contrast: float = _flag(0.0, "blend with a CLAHE view, clip limit U(1, c), weight U(0, 1) (0: off, else above 1)")
    coarse_sharpness: float = _flag(0.0, "unsharp mask at sigma 2-16 px, amount U(-s, s), negative smooths (0: off, at most 1)")
    spectrum_match: float = _flag(
        0.0, "filter each film towards another's amplitude per frequency band, power U(0, s) (0: off, at most 1)"
    )
    mixup: float = _flag(
        0.0, "mixup: blend films and labels, Beta(a, a) weights (0: off; training accuracy then counts blended labels)"
    )

    def __post_init__(self) -> None:
        if self.local_contrast and self.local_contrast <= 1.0:
            raise ValueError(f"local_contrast is a CLAHE clip limit above 1 (or 0: off), not {self.local_contrast:g}")
        if not 0.0 <= self.coarse_sharpness <= 1.0:
            raise ValueError(f"coarse_sharpness is an unsharp-mask amount in 0..1 (0: off), not {self.coarse_sharpness:g}")
        if not 0.0 <= self.spectrum_match <= 1.0:
            raise ValueError(
                f"spectrum_match is the largest power of the spectral filter, in 0..1 (0: off), not {self.spectrum_match:g}"
            )

    def as_params(self) -> dict[str, object]:
        return {f"aug_{key}": value for key, value in asdict(self).items()}


AUGMENTATION_FLAGS = {f.name: f.metadata["flag"] for f in fields(Augmentation) if "flag" in f.metadata}
"""The per-film augmentations with a value (0 = off) that a run can set, and their help."""


@dataclass
class TrainConfig:
    """Every knob of a run; defaults are the seed recipe (224 px, batch 16, 15 epochs, Adam 1e-4)."""

    data_dir: str = field(default_factory=lambda: str(locations().data_dir))
    architecture: str = ARCHITECTURE_NAMES[0]
    ensemble_of: str = ""  # comma-separated trained model directories: combine them instead of training
    img_size: int = 224
    batch_size: int = 16
    epochs: int = 15
    lr: float = 1e-4
    base_weights: str = field(default_factory=lambda: training_settings().base_weights)
    dropout: float = 0.3
    head_units: int = 256
    # Transfer recipe (pretrained base available)
    feature_views: int = 3
    fine_tune_layers: int = 52  # DenseNet121's conv5 block 13-16 and final bn: the top ~10% of layers
    fine_tune_epochs: int = 5
    # From-scratch recipe (no pretrained base): "size:epochs:batch" phases, the last at img_size
    scratch_schedule: str = "128:15:32,224:3:16"
    scratch_lr: float = 1e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    augment: bool = True
    augmentation: Augmentation = field(default_factory=Augmentation)  # what augment applies (a dict when read from JSON)
    intensity: str = STRETCH  # what the model sees of each film's grey levels: pneumo_core.common.preprocess.INTENSITY_MODES
    balance_acquisition: bool = False  # weight classes alike within each acquisition group (pneumo_core.training.acquisition)
    acquisition_offset: bool = (
        False  # train on logit + the group's log-odds (pneumo_core.modeling.architectures.with_logit_offset)
    )
    target_sensitivity: float = 0.97
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 42
    output_dir: str = field(default_factory=lambda: str(locations().runs_dir))
    run_name: str = field(default_factory=lambda: datetime.now(UTC).strftime("run-%Y%m%d-%H%M%S"))
    progress_file: str | None = None
    experiment: str = MLFLOW_EXPERIMENT
    smoke: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.augmentation, dict):  # a configuration read back from its JSON
            values = dict(self.augmentation)
            values["brightness"] = tuple(values.get("brightness", Augmentation.brightness))
            self.augmentation = Augmentation(**values)
        if self.balance_acquisition and self.acquisition_offset:
            raise ValueError(
                "Choose one way to keep the acquisition style from telling the class: balance_acquisition reweights "
                "the films, acquisition_offset explains the style's class ratio with a logit offset."
            )

    @classmethod
    def from_record(cls, record: dict[str, Any], **overrides: Any) -> TrainConfig:
        """The configuration a model's metadata records (``metadata["config"]``: flat, the augmentation's fields beside
        the others), with ``overrides``; what it does not record keeps its default."""
        known = {f.name for f in fields(cls)} - {"augmentation"}
        augmentation = {f.name for f in fields(Augmentation)}
        values = {key: value for key, value in record.items() if key in known}
        recorded_augmentation = {key: value for key, value in record.items() if key in augmentation}
        return cls(**{**values, "augmentation": recorded_augmentation, **overrides})

    def augmentation_args(self) -> list[str]:
        """``train.py`` flags for the per-film augmentations this configuration sets (:data:`AUGMENTATION_FLAGS`)."""
        default = Augmentation()
        return [
            arg
            for name in AUGMENTATION_FLAGS
            if getattr(self.augmentation, name) != getattr(default, name)
            for arg in (f"--{name.replace('_', '-')}", f"{getattr(self.augmentation, name):g}")
        ]

    def effective(self) -> TrainConfig:
        """The configuration that will actually run: with ``smoke``, :data:`SMOKE_OVERRIDES` replace the defaults."""
        if not self.smoke:
            return self
        defaults = TrainConfig(data_dir=self.data_dir)
        return replace(self, **{k: v for k, v in SMOKE_OVERRIDES.items() if getattr(self, k) == getattr(defaults, k)})

    def applied_augmentation(self) -> Augmentation | None:
        """The augmentation the run applies: None with ``augment`` off."""
        return self.augmentation if self.augment else None

    def scratch_phases(self) -> list[tuple[int, int, int]]:
        problem = ValueError(
            f"--scratch-schedule must be size:epochs:batch items (positive whole numbers) ending at "
            f"--img-size {self.img_size}, e.g. 128:15:32,{self.img_size}:3:16"
        )
        try:
            phases = [tuple(int(part) for part in item.split(":")) for item in self.scratch_schedule.split(",")]
        except ValueError:
            raise problem from None
        if any(len(phase) != 3 or min(phase) < 1 for phase in phases) or phases[-1][0] != self.img_size:
            raise problem
        return phases  # type: ignore[return-value]
