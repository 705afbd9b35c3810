"""Small synthetic images for tests (no fixtures on disk)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def synthetic_xray(size: int = 96, seed: int = 0) -> np.ndarray:
    """A grayscale image shaped vaguely like a chest film: dark lungs in a bright body, some noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    body = (
        180
        - 120 * (((x - 0.3) ** 2 / 0.02 + (y - 0.5) ** 2 / 0.09) < 1)
        - 120 * (((x - 0.7) ** 2 / 0.02 + (y - 0.5) ** 2 / 0.09) < 1)
    )
    return np.clip(body + rng.normal(0, 12, (size, size)), 0, 255).astype(np.uint8)


def encode(array: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def dicom_bytes(
    pixels: np.ndarray,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    frames: int = 1,
    with_pixels: bool = True,
    **attributes,
) -> bytes:
    """A minimal DICOM Part 10 file (CR, explicit VR little endian) holding ``pixels`` as uint16."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.Modality = "Doe^Jane", "P-123", "20200101", "CR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    for name, value in attributes.items():
        setattr(ds, name, value)
    if with_pixels:
        ds.PixelData = np.ascontiguousarray(np.repeat(pixels[None], frames, axis=0).astype("<u2")).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def crafted_dicoms() -> dict[str, bytes]:
    """DICOM files that real devices or an attacker produce and a decoder must survive: a header without Rows, a
    window width of 0 or below (real films carry it), a sigmoid VOI LUT with a bad width, a frame count that is not a
    number, and empty pixel data. Built with pydicom, edited where pydicom refuses to write the value."""
    from pydicom import dcmread

    film = synthetic_xray(128, seed=3).astype("uint16") * 16

    def edited(change) -> bytes:
        dataset = dcmread(io.BytesIO(dicom_bytes(film)))
        change(dataset)
        buffer = io.BytesIO()
        dataset.save_as(buffer, enforce_file_format=True)
        return buffer.getvalue()

    frames_tag = b"\x28\x00\x08\x00IS\x02\x00"  # (0028,0008) Number of Frames, explicit VR, 2 bytes
    return {
        "no_rows.dcm": edited(lambda ds: delattr(ds, "Rows")),
        "window_width_0.dcm": dicom_bytes(film, WindowCenter=1000, WindowWidth=0),
        "window_width_negative.dcm": dicom_bytes(film, WindowCenter=1000, WindowWidth=-5),
        "sigmoid_bad_width.dcm": dicom_bytes(film, WindowCenter=1000, WindowWidth=0, VOILUTFunction="SIGMOID"),
        "frames_not_a_number.dcm": dicom_bytes(film, NumberOfFrames=9).replace(frames_tag + b"9 ", frames_tag + b"ab"),
        "empty_pixel_data.dcm": edited(lambda ds: setattr(ds, "PixelData", b"")),
    }


WINDOWED_BUT_READABLE = ("window_width_0.dcm", "window_width_negative.dcm", "sigmoid_bad_width.dcm")
"""Of :func:`crafted_dicoms`, the files whose window cannot be applied but whose film can: they get an answer."""


def site_variants(film: bytes) -> dict[str, bytes]:
    """One real film as sites send it: re-sampled, stored sideways with an EXIF rotation, re-encoded as JPEG, 16-bit,
    as a windowed DICOM (MONOCHROME2 and the inverted MONOCHROME1), and mildly cropped (5% off each edge, or 10% off
    one edge). Each variant shows the same anatomy upright once decoded, so a reader would answer it as the original."""
    gray = np.asarray(Image.open(io.BytesIO(film)).convert("L"))
    height, width = gray.shape

    def jpeg(array: np.ndarray, quality: int = 95, orientation: int | None = None) -> bytes:
        buffer = io.BytesIO()
        image = Image.fromarray(array)
        exif = image.getexif()
        if orientation is not None:
            exif[0x0112] = orientation
        image.save(buffer, format="JPEG", quality=quality, exif=exif.tobytes())
        return buffer.getvalue()

    def resized(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return np.asarray(Image.fromarray(array).resize(size, Image.Resampling.LANCZOS))

    def sideways(array: np.ndarray) -> bytes:
        return jpeg(np.rot90(array).copy(), orientation=6)  # stored turned left; orientation 6 turns it back right

    def cropped(array: np.ndarray, top: float, bottom: float, side: float) -> np.ndarray:
        rows, cols = array.shape
        return array[int(rows * top) : rows - int(rows * bottom), int(cols * side) : cols - int(cols * side)]

    twelve_bit = gray.astype(np.uint16) * 16
    low, high = np.percentile(twelve_bit, [1, 99])
    window = {"WindowCenter": int((low + high) / 2), "WindowWidth": int(high - low)}
    return {
        "re-sampled to 700 × 900": jpeg(resized(gray, (700, 900))),
        "half size": jpeg(resized(gray, (width // 2, height // 2))),
        "1.5 × size": jpeg(resized(gray, (width * 3 // 2, height * 3 // 2))),
        "sideways, EXIF orientation 6": sideways(gray),
        "700 × 900, sideways, EXIF orientation 6": sideways(resized(gray, (700, 900))),
        "JPEG re-encoded at quality 50": jpeg(gray, quality=50),
        "16-bit PNG": encode(gray.astype(np.uint16) * 257),
        "DICOM, 12-bit, windowed 1st–99th percentile": dicom_bytes(twelve_bit, **window),
        "DICOM, 12-bit, MONOCHROME1": dicom_bytes(4095 - twelve_bit, photometric="MONOCHROME1"),
        "cropped 5% each side": jpeg(cropped(gray, 0.05, 0.05, 0.05)),
        "cropped 10% off the top": jpeg(cropped(gray, 0.10, 0.0, 0.0)),
        "cropped 10% off the bottom": jpeg(cropped(gray, 0.0, 0.10, 0.0)),
        "cropped 10% off one side": jpeg(cropped(gray, 0.0, 0.0, 0.0)[:, int(width * 0.10) :]),
    }


def harsh_crop(film: bytes) -> bytes:
    """Beyond a mild crop: 10% off the bottom and off each side (a fifth of the width gone)."""
    gray = np.asarray(Image.open(io.BytesIO(film)).convert("L"))
    rows, cols = gray.shape
    return encode(gray[: rows - int(rows * 0.10), int(cols * 0.10) : cols - int(cols * 0.10)], "JPEG")


def deflated_dicom_bomb(inflated_bytes: int) -> bytes:
    """A DICOM in the deflated transfer syntax whose dataset inflates to about ``inflated_bytes``: a small film, then a
    private element of zeros (compressed piece by piece, so the bomb itself is never held in memory)."""
    import zlib

    from pydicom import dcmread
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    dataset = dcmread(io.BytesIO(dicom_bytes(synthetic_xray(64).astype("uint16"))))
    dataset.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    deflated = buffer.getvalue()
    dataset_start = 132 + 12 + int.from_bytes(deflated[140:144], "little")
    body = zlib.decompress(deflated[dataset_start:], -zlib.MAX_WBITS)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [compressor.compress(body + b"\xe1\x7f\x00\x10OB\x00\x00" + inflated_bytes.to_bytes(4, "little"))]
    zeros = bytes(2**20)
    for _ in range(inflated_bytes // len(zeros)):
        parts.append(compressor.compress(zeros))
    parts.append(compressor.compress(bytes(inflated_bytes % len(zeros))) + compressor.flush())
    return deflated[:dataset_start] + b"".join(parts)


def rescanned_jpeg(film: np.ndarray, repeats: int) -> bytes:
    """A progressive JPEG of ``film`` whose last scan is repeated ``repeats`` more times: valid, and each repeat is
    one more pass over the whole image for the decoder."""
    buffer = io.BytesIO()
    Image.fromarray(film).save(buffer, format="JPEG", progressive=True, quality=90)
    data = buffer.getvalue()
    last_scan = data[data.rindex(b"\xff\xda") : data.rindex(b"\xff\xd9")]
    return data[: data.rindex(b"\xff\xd9")] + last_scan * repeats + b"\xff\xd9"


def encapsulated_dicom(frame: bytes, rows: int, columns: int, colour: bool = False) -> bytes:
    """A DICOM whose header declares ``rows × columns`` 8-bit grey (or, with ``colour``, YCbCr as JPEG stores it) and
    whose one frame is the JPEG ``frame``."""
    from pydicom import dcmread
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    dataset = dcmread(io.BytesIO(dicom_bytes(np.zeros((8, 8), dtype=np.uint16))))
    dataset.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    dataset.Rows, dataset.Columns = rows, columns
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 8, 8, 7
    if colour:
        dataset.SamplesPerPixel, dataset.PhotometricInterpretation, dataset.PlanarConfiguration = 3, "YBR_FULL_422", 0
    dataset.PixelData = encapsulate([frame])
    dataset["PixelData"].VR = "OB"
    dataset["PixelData"].is_undefined_length = True
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
