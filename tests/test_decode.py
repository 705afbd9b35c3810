"""The one decoding path: common formats decode to the same picture; bad files get a plain reason."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from pneumo_core.decode import MAX_FILE_BYTES, ImageDecodeError, decode_image

from .imaging import encode, synthetic_xray

FILM = synthetic_xray(120, seed=2)


@pytest.mark.parametrize("fmt, mode", [("PNG", "L"), ("PNG", "RGB"), ("PNG", "RGBA"), ("PNG", "P"), ("BMP", "L"), ("TIFF", "L"), ("JPEG", "L"), ("JPEG", "RGB"), ("JPEG", "CMYK")])
def test_formats_decode_to_the_same_grayscale(fmt, mode):
    decoded = decode_image(encode(FILM, fmt, mode))
    assert decoded.shape == FILM.shape and decoded.dtype == np.uint8
    tolerance = 8 if fmt == "JPEG" else 1  # lossy formats differ a little; palette quantisation too
    assert np.abs(decoded.astype(int) - FILM.astype(int)).mean() < tolerance


def test_sixteen_bit_png_matches_eight_bit():
    buffer = io.BytesIO()
    Image.fromarray(FILM.astype(np.uint16) * 257).save(buffer, format="PNG")
    decoded = decode_image(buffer.getvalue())
    stretched = np.round((FILM.astype(float) - FILM.min()) * 255 / (FILM.max() - FILM.min()))
    assert np.abs(decoded.astype(int) - stretched).max() <= 1


def test_exif_orientation_is_applied():
    wide = np.zeros((60, 100), np.uint8)
    wide[:, :10] = 255  # a bright stripe on the left
    image = Image.fromarray(wide)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    decoded = decode_image(buffer.getvalue())
    assert decoded.shape == (100, 60)
    assert decoded[:10].mean() > 200  # the stripe is now on top


def test_dicom_from_pydicom_test_data():
    from pydicom.data import get_testdata_file

    data = open(get_testdata_file("CT_small.dcm"), "rb").read()
    decoded = decode_image(data)
    assert decoded.shape == (128, 128) and decoded.max() == 255 and decoded.min() == 0


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"", "empty"),
        (b"\x00\x01garbage" * 100, "not an image format"),
        (b"<html><body>not an image</body></html>", "not an image format"),
        (encode(FILM, "PNG")[:200], "damaged"),
        (encode(np.zeros((8, 8), np.uint8)), "too small"),
    ],
)
def test_bad_files_get_a_plain_reason(payload, reason):
    with pytest.raises(ImageDecodeError, match=reason):
        decode_image(payload)


def test_file_over_the_size_limit_is_refused_before_decoding():
    with pytest.raises(ImageDecodeError, match="too large"):
        decode_image(b"\xff" * (MAX_FILE_BYTES + 1))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose header declares width × height pixels."""
    data = bytearray(encode(np.zeros((40, 40), np.uint8)))
    ihdr = 8 + 8  # signature, then length + "IHDR"
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13])))
    return bytes(data)


def test_decompression_bomb_is_refused_from_the_header():
    with pytest.raises(ImageDecodeError, match="too large|implausibly large"):
        decode_image(png_declaring(40000, 40000))
    with pytest.raises(ImageDecodeError, match="too large"):
        decode_image(png_declaring(9000, 9000))  # over our limit, under PIL's own bomb limit
