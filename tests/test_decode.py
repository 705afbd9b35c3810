"""The one decoding path: common formats decode to the same picture; bad files get a plain reason."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from devtools.imaging import dicom_bytes, encode, synthetic_xray
from pneumo_core.serving.decode import MAX_FILE_BYTES, ImageDecodeError, decode_image

FILM = synthetic_xray(120, seed=2)


@pytest.mark.parametrize(
    "fmt, mode",
    [
        ("PNG", "L"),
        ("PNG", "RGB"),
        ("PNG", "RGBA"),
        ("PNG", "P"),
        ("BMP", "L"),
        ("TIFF", "L"),
        ("JPEG", "L"),
        ("JPEG", "RGB"),
        ("JPEG", "CMYK"),
    ],
)
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


FILM_12BIT = FILM.astype(np.uint16) * 16  # the same picture stored in 12 bits


def test_dicom_monochrome2_matches_the_8_bit_picture():
    decoded = decode_image(dicom_bytes(FILM_12BIT))
    stretched = np.round((FILM.astype(float) - FILM.min()) * 255 / (FILM.max() - FILM.min()))
    assert np.abs(decoded.astype(int) - stretched).max() <= 1


def test_dicom_monochrome1_is_inverted_and_rescale_applied():
    inverted = (4095 - FILM_12BIT).astype(np.uint16)
    decoded = decode_image(dicom_bytes(inverted, "MONOCHROME1", RescaleSlope=2, RescaleIntercept=-100))
    plain = decode_image(dicom_bytes(FILM_12BIT))
    assert np.abs(decoded.astype(int) - plain.astype(int)).max() <= 1


def test_dicom_window_is_applied():
    windowed = decode_image(dicom_bytes(FILM_12BIT, WindowCenter=1600, WindowWidth=800))
    assert (windowed == 0).mean() > 0.05 and (windowed == 255).mean() > 0.05  # values outside the window clip


@pytest.mark.parametrize(
    "payload, reason",
    [
        (lambda: dicom_bytes(FILM_12BIT, with_pixels=False), "no image"),
        (lambda: dicom_bytes(FILM_12BIT, frames=3), "several frames"),
        (lambda: b"\0" * 128 + b"DICM" + b"\x02\x00garbage", "no image"),
        (lambda: dicom_bytes(FILM_12BIT)[:-5000], "damaged"),
        (lambda: b"%PDF-1.7\n1 0 obj<<>>endobj\n" * 20, "PDF document, not an image"),
        (lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>', "not an image format"),
    ],
)
def test_bad_dicom_and_disguised_files(payload, reason):
    with pytest.raises(ImageDecodeError, match=reason):
        decode_image(payload())


def test_same_film_in_8_bit_16_bit_and_dicom_gets_the_same_probability(tiny_predictor):
    png16 = io.BytesIO()
    Image.fromarray(FILM.astype(np.uint16) * 257).save(png16, format="PNG")
    cases = tiny_predictor.classify(
        [("8bit.png", encode(FILM)), ("16bit.png", png16.getvalue()), ("film.dcm", dicom_bytes(FILM_12BIT))]
    )
    probabilities = [case.prediction.probability for case in cases]
    assert max(probabilities) - min(probabilities) < 0.01


def test_compressed_dicom_decodes_where_a_handler_exists_else_says_so():
    from pydicom.data import get_testdata_file

    assert decode_image(open(get_testdata_file("MR_small_RLE.dcm"), "rb").read()).shape == (64, 64)
    assert decode_image(open(get_testdata_file("JPEG2000.dcm"), "rb").read()).shape == (1024, 256)
    with pytest.raises(ImageDecodeError, match="compression this app cannot decode"):
        decode_image(open(get_testdata_file("JPEG-lossy.dcm"), "rb").read())  # 12-bit lossy JPEG: no handler installed


def test_very_large_film_decodes_and_canonicalizes():
    from pneumo_core.common.preprocess import canonicalize

    big = np.asarray(Image.fromarray(FILM).resize((3000, 3000)))
    decoded = decode_image(encode(big, "PNG"))
    assert decoded.shape == (3000, 3000)
    assert canonicalize(decoded).shape == (224, 224)


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "TIFF", "BMP"])
def test_a_palette_film_of_any_size_decodes_like_its_grey_original(fmt):
    """Films saved with a palette (mode P) at 512 px and more were refused as damaged: Pillow cannot reduce mode P."""
    grey = synthetic_xray(640, seed=3)
    buffer = io.BytesIO()
    Image.fromarray(grey).convert("P").save(buffer, format=fmt)
    decoded = decode_image(buffer.getvalue())
    assert decoded.shape == grey.shape and np.abs(decoded.astype(int) - grey.astype(int)).mean() < 2


def test_decoding_never_switches_the_process_warning_filters(monkeypatch):
    """Warning filters are process-wide: a decode that switched them (``catch_warnings``) in one thread changed the
    record of a file decoded at the same time in another. A bomb is still refused from its header."""
    from types import SimpleNamespace

    from pneumo_core.serving import decode

    def shared_state(*args, **kwargs):
        raise AssertionError("a decode switched the process-wide warning filters")

    monkeypatch.setattr(decode, "warnings", SimpleNamespace(catch_warnings=shared_state, simplefilter=shared_state))
    assert decode_image(encode(synthetic_xray(128, seed=2))).shape == (128, 128)
    with pytest.raises(ImageDecodeError, match="too large"):
        decode_image(png_declaring(12_000, 12_000))  # 144 megapixels: Pillow only warns, the header check refuses
