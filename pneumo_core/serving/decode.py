"""Decode any uploaded or stored image file into one grayscale uint8 array.

This is the only decoding path: training, the CLI and the app all call
:func:`decode_image`. It either returns an ``(H, W)`` uint8 array or raises
:class:`ImageDecodeError` whose message is one plain sentence a clinician can
read. It never writes the bytes anywhere.
"""

from __future__ import annotations

import io
import logging
import warnings
import zlib
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
# pydicom warns of, and logs, each value a file breaks its rules with (a patient's name among them): the file is
# decoded or refused with a plain reason instead, and none of its values reaches stderr or a log.
warnings.filterwarnings("ignore", module="pydicom")
logging.getLogger("pydicom").setLevel(logging.CRITICAL)

MIN_SIDE = 32
"""Smallest side accepted: anything smaller carries no diagnostic detail."""

MAX_JPEG_SCANS = 64
"""Most scans a JPEG may hold: encoders write 1 (baseline) to about 12 (progressive); each scan is a pass over the whole
image, so a file that repeats scans costs decode time without limit (thousands of 75-byte scans: tens of seconds)."""

MAX_DICOM_PIXEL_BYTES = 160 * 2**20
"""Most memory a DICOM image may take once decoded (rows × columns × samples × bits allocated): 7000 × 7000 16-bit
grey or 8-bit RGB fits; a chest film takes under 40 MB."""

MAX_INFLATED_BYTES = 4 * MAX_FILE_BYTES
"""Most bytes a deflated DICOM dataset may inflate to (checked while inflating, before pydicom reads it)."""

_STRIP_ROWS = 256
"""Rows windowed at a time: pydicom's LUT functions work in float64, so a whole 7000² film would take 392 MB per copy."""

_DICOM_MAGIC_OFFSET = 128
_DEFLATED_UID = b"1.2.840.10008.1.2.1.99"
_JPEG_SCAN_MARKER = b"\xff\xda"  # start of scan; inside entropy-coded data every 0xFF is followed by 0x00 or RSTn
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
    """True when the bytes carry the DICOM Part 10 preamble (``DICM`` at byte 128), or start as a DICOM dataset
    written without it: the file meta group (0002,xxxx) or the identifying group (0008,xxxx) in explicit VR."""
    if data[_DICOM_MAGIC_OFFSET : _DICOM_MAGIC_OFFSET + 4] == b"DICM":
        return True
    return data[:2] in (b"\x02\x00", b"\x08\x00") and data[4:6].isalpha() and data[4:6].isupper()


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
    _check_jpeg_scans(data)
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


def _check_jpeg_scans(data: bytes) -> None:
    """Refuse a JPEG (or an encapsulated JPEG frame) with more scans than any encoder writes."""
    if data.startswith(b"\xff\xd8") and (scans := data.count(_JPEG_SCAN_MARKER)) > MAX_JPEG_SCANS:
        raise ImageDecodeError(
            f"The JPEG file repeats its scans {scans} times (encoders write at most a dozen) and was refused: "
            "re-export the X-ray."
        )


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
    """Map an array's own min..max to 0..255 (for 16-bit PNG/TIFF and DICOM), in one float32 working copy."""
    low, high = float(pixels.min()), float(pixels.max())
    if high <= low:
        return np.zeros(pixels.shape, dtype=np.uint8)
    work = np.array(pixels, dtype=np.float32)  # a copy: the caller's array is left as it was
    work -= low
    work *= 255.0 / (high - low)
    np.rint(work, out=work)
    return work.astype(np.uint8)


def _windowed(pixels: np.ndarray, dataset) -> np.ndarray:
    """The modality LUT (rescale) and the VOI LUT or window the file asks for, as float32; a window the file states but
    that cannot be applied (a width of 0 or below, which real films carry) is ignored: the film's own range is used.
    Both are pixel-wise, so they run on strips of rows into one float32 result (pydicom computes in float64)."""
    windowed = np.empty(pixels.shape, dtype=np.float32)
    for start in range(0, pixels.shape[0], _STRIP_ROWS):
        windowed[start : start + _STRIP_ROWS] = _windowed_strip(pixels[start : start + _STRIP_ROWS], dataset)
    return windowed


def _windowed_strip(pixels: np.ndarray, dataset) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        pixels = apply_modality_lut(pixels, dataset)
    except (ValueError, TypeError, AttributeError, KeyError):
        pass  # a broken rescale: the stored values, stretched below, still show the film
    try:
        return apply_voi_lut(pixels, dataset)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError):
        return pixels


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """The mean of a colour image's three samples, accumulated in one float32 plane."""
    plane = rgb[..., 0].astype(np.float32)
    plane += rgb[..., 1]
    plane += rgb[..., 2]
    plane /= 3
    return plane


def _check_inflated_size(data: bytes) -> None:
    """A deflated DICOM (the whole dataset zlib-compressed after the file meta) is inflated here first, in pieces and
    without keeping them, up to :data:`MAX_INFLATED_BYTES`: pydicom would inflate it whole, whatever it grows to."""
    meta_start = _DICOM_MAGIC_OFFSET + 4 if data[_DICOM_MAGIC_OFFSET : _DICOM_MAGIC_OFFSET + 4] == b"DICM" else 0
    meta = data[meta_start : meta_start + 4096]
    if _DEFLATED_UID not in meta:
        return
    if meta[:4] != b"\x02\x00\x00\x00" or meta[4:6] != b"UL":
        raise ImageDecodeError("The DICOM file is deflated but its header does not say where the data starts.")
    dataset_start = meta_start + 12 + int.from_bytes(meta[8:12], "little")
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    pending, inflated = data[dataset_start:], 0
    try:
        while pending and not inflater.eof:
            inflated += len(inflater.decompress(pending, 2**20))
            pending = inflater.unconsumed_tail
            if inflated > MAX_INFLATED_BYTES:
                raise ImageDecodeError(
                    f"The DICOM file inflates to more than {MAX_INFLATED_BYTES / 2**20:.0f} MB "
                    "(a chest film takes far less) and was refused."
                )
    except zlib.error:
        raise ImageDecodeError("The DICOM file is damaged and cannot be read.") from None


def _check_decoded_size(dataset, columns: int, rows: int, samples: int) -> None:
    """Refuse what would take more than :data:`MAX_DICOM_PIXEL_BYTES` decoded, and a compressed frame whose own size
    differs from the header's (the pixel count is checked on the header: the frame must be what it declares)."""
    bits = int(dataset.get("BitsAllocated") or 16)
    needed = columns * rows * samples * max(bits, 8) // 8
    if needed > MAX_DICOM_PIXEL_BYTES:
        raise ImageDecodeError(
            f"The DICOM image would take {needed / 2**20:.0f} MB of memory to decode (the limit is "
            f"{MAX_DICOM_PIXEL_BYTES / 2**20:.0f} MB; a chest film takes under 40 MB)."
        )
    syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None or not syntax.is_encapsulated:
        return
    from pydicom.encaps import generate_frames

    try:
        frame = next(generate_frames(dataset.PixelData, number_of_frames=1))
    except (StopIteration, ValueError, TypeError, KeyError):
        raise ImageDecodeError("The DICOM pixel data is damaged or incomplete.") from None
    _check_jpeg_scans(frame)
    try:
        with Image.open(io.BytesIO(frame)) as image:  # JPEG and JPEG 2000 frames: the header only
            size = image.size
    except Exception:  # noqa: BLE001 - a codec Pillow cannot open (RLE, JPEG-LS): pydicom decodes it to its header's size
        return
    if size != (columns, rows):
        raise ImageDecodeError(
            f"The DICOM frame is {size[0]} × {size[1]} pixels but its header says {columns} × {rows}: the file is "
            "damaged or altered."
        )


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

    _check_inflated_size(data)
    try:
        dataset = pydicom.dcmread(io.BytesIO(data), force=True)  # force: a dataset written without its preamble
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError):
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
    _check_decoded_size(dataset, columns, rows, samples)
    try:
        dataset.pixel_array_options(as_rgb=False)  # YCbCr stays as stored: its Y is the grey plane (no float64 RGB)
        pixels = dataset.pixel_array
    except (NotImplementedError, RuntimeError):
        raise ImageDecodeError("The DICOM image uses a compression this app cannot decode.") from None
    except (ValueError, AttributeError, TypeError, KeyError):
        raise ImageDecodeError("The DICOM pixel data is damaged or incomplete.") from None
    photometric = str(getattr(dataset, "PhotometricInterpretation", "MONOCHROME2"))
    if pixels.ndim == 3:  # colour: the luma of YCbCr as stored, else a plain luminance of RGB
        pixels = pixels[..., 0] if photometric.startswith("YBR") else _luminance(pixels)
    else:
        pixels = _windowed(pixels, dataset)
    gray = _stretch_to_uint8(pixels)
    if photometric == "MONOCHROME1":
        gray = 255 - gray  # MONOCHROME1 stores bone dark: invert to the usual look
    fields = {name: str(dataset.get(name, "")) for name in DICOM_PATIENT_FIELDS if dataset.get(name, "") not in ("", None)}
    return DecodedImage(gray, 0.0, fields)
