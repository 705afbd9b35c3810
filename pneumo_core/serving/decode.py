"""Decode any uploaded or stored image file into one grayscale uint8 array.

This is the only decoding path: training, the CLI and the app all call
:func:`decode_image`. It either returns an ``(H, W)`` uint8 array or raises
:class:`ImageDecodeError` whose message is one plain sentence a clinician can
read. It never writes the bytes anywhere.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_FILE_BYTES = 30 * 1024 * 1024
"""Largest file accepted (30 MB): big enough for a 16-bit DICOM chest film."""

MAX_PIXELS = 50_000_000
"""Largest image accepted (e.g. 7000 × 7000), checked from the header before decoding."""
# Pillow warns of a decompression bomb from 89 megapixels; the header check refuses far less, so its warning says
# nothing to a user. Ignored once for the process: a filter switched per decode (catch_warnings) is shared by every
# thread and leaked between concurrent decodes.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

MIN_SIDE = 32
"""Smallest side accepted: anything smaller carries no diagnostic detail."""

_DICOM_MAGIC_OFFSET = 128
_IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"BM", b"II*\x00", b"MM\x00*", b"GIF8")


class ImageDecodeError(ValueError):
    """A file that cannot be turned into an X-ray image; the message says why, in plain words."""


@dataclass(frozen=True)
class DecodedImage:
    """A decoded upload: the grayscale pixels plus what was seen on the way (kept in memory only)."""

    gray: np.ndarray
    colourfulness: float = 0.0  # Hasler & Süsstrunk 2003; 0 for grayscale, > 15 for visibly coloured pictures
    dicom_fields: dict[str, str] = field(default_factory=dict)  # patient fields: shown on request, never logged


def is_dicom(data: bytes) -> bool:
    """True when the bytes carry the DICOM Part 10 preamble (``DICM`` at byte 128)."""
    return data[_DICOM_MAGIC_OFFSET : _DICOM_MAGIC_OFFSET + 4] == b"DICM"


def decode_image(data: bytes) -> np.ndarray:
    """Decode image file bytes (JPEG, PNG, BMP, TIFF, DICOM, ...) to a 2-D uint8 grayscale array."""
    return decode_upload(data).gray


def decode_upload(data: bytes) -> DecodedImage:
    """Like :func:`decode_image`, keeping the colourfulness and DICOM patient fields for the checks and the app."""
    if not data:
        raise ImageDecodeError("The file is empty.")
    if len(data) > MAX_FILE_BYTES:
        raise ImageDecodeError(
            f"The file is too large ({len(data) / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES / 2**20:.0f} MB)."
        )
    decoded = _decode_dicom(data) if is_dicom(data) else _decode_raster(data)
    height, width = decoded.gray.shape
    if min(height, width) < MIN_SIDE:
        raise ImageDecodeError(f"The image is too small ({width} × {height} pixels; at least {MIN_SIDE} per side).")
    return decoded


def _check_pixel_count(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageDecodeError(
            f"The image is too large ({width} × {height} pixels; the limit is {MAX_PIXELS / 1e6:.0f} megapixels)."
        )


def _decode_raster(data: bytes) -> DecodedImage:
    try:
        with Image.open(io.BytesIO(data)) as image:
            _check_pixel_count(*image.size)  # header only: nothing allocated yet
            image.load()
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
            colourfulness = _colourfulness(image)
            gray, alpha = _gray_and_alpha(image)  # 8-bit planes: the decoded pixels can go
        del image
        return DecodedImage(_oriented(_over_black(gray, alpha), orientation), colourfulness)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError:
        raise ImageDecodeError(
            f"The image declares an implausibly large size (over {MAX_PIXELS / 1e6:.0f} megapixels) and was refused."
        ) from None
    except UnidentifiedImageError:
        if data.startswith(_IMAGE_SIGNATURES):
            raise ImageDecodeError("The image file is damaged or incomplete and cannot be read.") from None
        if data.startswith(b"%PDF"):
            raise ImageDecodeError(
                "This is a PDF document, not an image: export the X-ray itself as JPEG, PNG, TIFF or DICOM."
            ) from None
        raise ImageDecodeError("This file is not an image format that can be read (JPEG, PNG, BMP, TIFF or DICOM).") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise ImageDecodeError("The image file is damaged or incomplete and cannot be read.") from None


def _gray_and_alpha(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Any PIL mode as an 8-bit grey plane (high bit depths stretched to their own range) and, for a transparent
    picture, its 8-bit alpha plane: a few 8-bit planes at most, never a second full-colour copy."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        return _stretch_to_uint8(np.asarray(image, dtype=np.float32)), None
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    alpha = np.asarray(image.getchannel("A")) if image.mode in ("RGBA", "LA", "PA") else None
    return np.asarray(image.convert("L"), dtype=np.uint8), alpha


def _over_black(gray: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Transparent pixels laid over black, an X-ray's background: ``gray · alpha / 255``, computed in place."""
    if alpha is None:
        return gray
    composed = gray.astype(np.uint16)
    composed *= alpha
    composed += 127
    composed //= 255
    return composed.astype(np.uint8)


EXIF_ORIENTATION = 0x0112
_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
"""EXIF orientation → the transpose that shows the picture upright (as ``ImageOps.exif_transpose``)."""


def _oriented(gray: np.ndarray, orientation: int) -> np.ndarray:
    """The grey plane turned upright as its EXIF orientation says (done on one 8-bit plane, after decoding)."""
    method = _ORIENTATIONS.get(orientation)
    return gray if method is None else np.asarray(Image.fromarray(gray).transpose(method))


REDUCIBLE_MODES = ("L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr")
"""The modes :meth:`PIL.Image.Image.reduce` works on; others are converted to RGB before the colourfulness thumbnail."""


def _colourfulness(image: Image.Image) -> float:
    """Hasler & Süsstrunk's colourfulness of a small RGB thumbnail (0 for a gray picture)."""
    if image.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"):
        return 0.0
    if image.mode not in REDUCIBLE_MODES:  # a palette (P, PA), LAB, HSV...: Pillow cannot reduce it as it is
        image = image.convert("RGB")
    factor = max(1, max(image.size) // 256)
    thumbnail = (image.reduce(factor) if factor > 1 else image).convert("RGB")  # no full-size RGB copy of RGB modes
    thumbnail.thumbnail((128, 128))
    rgb = np.asarray(thumbnail, dtype=np.float64)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def _stretch_to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Map an array's own min..max to 0..255 (for 16-bit PNG/TIFF and DICOM)."""
    low, high = float(pixels.min()), float(pixels.max())
    if high <= low:
        return np.zeros(pixels.shape, dtype=np.uint8)
    return np.round((pixels - low) * (255.0 / (high - low))).astype(np.uint8)


def _windowed(pixels: np.ndarray, dataset) -> np.ndarray:
    """The modality LUT (rescale) and the VOI LUT or window the file asks for; a window the file states but that
    cannot be applied (a width of 0 or below, which real films carry) is ignored: the film's own range is used."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        pixels = apply_modality_lut(pixels, dataset)
    except (ValueError, TypeError, AttributeError, KeyError):
        pass  # a broken rescale: the stored values, stretched below, still show the film
    try:
        return apply_voi_lut(pixels, dataset)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError):
        return pixels


DICOM_PATIENT_FIELDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "Modality",
    "BodyPartExamined",
    "ViewPosition",
)


def _decode_dicom(data: bytes) -> DecodedImage:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, OSError, ValueError, EOFError):
        raise ImageDecodeError("The DICOM file is damaged and cannot be read.") from None
    if "PixelData" not in dataset or not dataset.get("PixelData"):
        raise ImageDecodeError("The DICOM file holds no image (no pixel data).")
    try:
        frames = int(dataset.get("NumberOfFrames") or 1)
        samples = int(dataset.get("SamplesPerPixel") or 1)
        columns, rows = int(dataset.Columns), int(dataset.Rows)
    except (AttributeError, TypeError, ValueError):
        raise ImageDecodeError(
            "The DICOM header is damaged: its image size, frame count or colour layout is missing or not a number."
        ) from None
    if frames > 1:
        raise ImageDecodeError("The DICOM file holds several frames; a single radiograph is expected.")
    if samples not in (1, 3):
        raise ImageDecodeError("The DICOM image has an unsupported colour layout.")
    _check_pixel_count(columns, rows)
    try:
        pixels = dataset.pixel_array
    except (NotImplementedError, RuntimeError):
        raise ImageDecodeError("The DICOM image uses a compression this app cannot decode.") from None
    except (ValueError, AttributeError, TypeError, KeyError):
        raise ImageDecodeError("The DICOM pixel data is damaged or incomplete.") from None
    if pixels.ndim == 3:  # colour DICOM: a plain luminance is the best we can do
        pixels = pixels.astype(np.float64).mean(axis=-1)
    else:
        pixels = _windowed(pixels, dataset)
    gray = _stretch_to_uint8(np.asarray(pixels, dtype=np.float64))
    if getattr(dataset, "PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1":
        gray = 255 - gray  # MONOCHROME1 stores bone dark: invert to the usual look
    fields = {name: str(dataset.get(name, "")) for name in DICOM_PATIENT_FIELDS if dataset.get(name, "") not in ("", None)}
    return DecodedImage(gray, 0.0, fields)
