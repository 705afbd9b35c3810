"""The not-a-chest-X-ray checks: colour and feature distance, and how they reach the CLI and predictor."""

import io

import numpy as np
from PIL import Image

from pneumo_core.serving.decode import decode_upload
from pneumo_core.serving.ood import COLOUR_LIMIT, WITHHOLD_FACTOR, FeatureDensity, ood_assessment

from .imaging import encode, synthetic_xray


def test_feature_density_flags_about_one_percent_of_inliers_and_most_outliers(tmp_path):
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(32, 32))
    train, val, test = (rng.normal(size=(n, 32)) @ mixing for n in (3000, 1000, 1000))
    outliers = rng.normal(size=(200, 32)) @ mixing + 3.0 * rng.normal(size=32) @ mixing
    density = FeatureDensity.fit(train, val)
    assert np.mean(density.distances(test) > density.limit) < 0.03
    assert np.mean(density.distances(outliers) > density.limit) > 0.95
    density.save(tmp_path)
    loaded = FeatureDensity.load(tmp_path)
    np.testing.assert_allclose(loaded.distances(test[:5]), density.distances(test[:5]), rtol=1e-4)
    assert FeatureDensity.load(tmp_path / "none") is None


def test_colour_pictures_are_flagged_gray_films_are_not():
    from sklearn.datasets import load_sample_images

    photo = io.BytesIO()
    Image.fromarray(load_sample_images().images[1]).save(photo, format="JPEG")
    assert decode_upload(photo.getvalue()).colourfulness > COLOUR_LIMIT
    film_as_rgb = decode_upload(encode(synthetic_xray(120), "JPEG", "RGB"))
    assert film_as_rgb.colourfulness < 1.0
    warnings, withheld = ood_assessment(40.0, None, None)
    assert "colour picture" in warnings[0] and withheld == warnings[0]  # no verdict for a colour picture
    assert ood_assessment(0.0, None, None) == ((), None)


def test_distance_tiers_warn_then_withhold():
    density = FeatureDensity(np.zeros(2), np.eye(2), limit=10.0)
    assert ood_assessment(0.0, 9.9, density) == ((), None)
    warnings, withheld = ood_assessment(0.0, 10.0 * WITHHOLD_FACTOR, density)
    assert withheld is None and "extra caution" in warnings[0]  # unusual, still a film: verdict with a warning
    warnings, withheld = ood_assessment(0.0, 10.0 * WITHHOLD_FACTOR + 0.1, density)
    assert withheld and "far from the X-rays" in withheld


def test_predictor_attaches_warnings_and_keeps_dicom_fields(tiny_predictor):
    from pydicom.data import get_testdata_file
    from sklearn.datasets import load_sample_images

    photo = io.BytesIO()
    Image.fromarray(load_sample_images().images[0]).save(photo, format="PNG")
    dicom = open(get_testdata_file("CT_small.dcm"), "rb").read()
    cases = tiny_predictor.classify(
        [("photo.png", photo.getvalue()), ("ct.dcm", dicom), ("film.png", encode(synthetic_xray(200)))]
    )
    assert [c.name for c in cases] == ["photo.png", "ct.dcm", "film.png"]
    assert any("colour picture" in w for w in cases[0].warnings)
    assert cases[0].withheld and cases[0].verdict is None and cases[0].prediction is not None
    assert cases[1].prediction is not None and cases[1].dicom_fields["Modality"] == "CT"
    assert not any("colour" in w for w in cases[2].warnings)
