"""The not-a-chest-X-ray checks: colour and feature distance, and how they reach the CLI and predictor."""

import io

import numpy as np
from PIL import Image

from devtools.imaging import encode, synthetic_xray
from pneumo_core.serving.decode import decode_upload
from pneumo_core.serving.ood import COLOUR_LIMIT, WITHHOLD_FACTOR, FeatureDensity, ood_assessment


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


def test_a_film_closer_to_the_training_films_turned_than_as_sent_is_withheld_as_upside_down():
    density = FeatureDensity(np.zeros(2), np.eye(2), limit=10.0)
    assert ood_assessment(0.0, 6.0, density, turned_distance=9.0) == ((), None)
    warnings, withheld = ood_assessment(0.0, 9.0, density, turned_distance=6.0)
    assert withheld and "upside down" in withheld and warnings == (withheld,)


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


def test_a_mild_crop_trims_each_edge_by_at_most_the_fraction_and_the_reference_holds_both_views(tmp_path):
    from pneumo_core.serving.ood import CROP_FRACTION, mildly_cropped, reference_features

    rng = np.random.default_rng(0)
    gray = synthetic_xray(200)
    for _ in range(50):
        rows, cols = mildly_cropped(gray, rng).shape
        assert 200 * (1 - 2 * CROP_FRACTION) <= rows <= 200 and 200 * (1 - 2 * CROP_FRACTION) <= cols <= 200
    paths = []
    for seed in range(3):
        paths.append(tmp_path / f"{seed}.png")
        paths[-1].write_bytes(encode(synthetic_xray(160, seed=seed)))
    seen = []

    def forward(canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seen.append(canonical)
        return np.zeros(len(canonical)), canonical.reshape(len(canonical), -1)[:, :4].astype(np.float32)

    features = reference_features(paths, forward)
    assert features.shape == (6, 4) and seen[0].shape == (6, 224, 224)  # each film as stored, then each cropped
    np.testing.assert_array_equal(features, reference_features(paths, forward))  # seeded: the same crops each time


def test_the_served_model_answers_real_films_as_sites_send_them_and_withholds_what_is_not_an_x_ray(real_data):
    """A few site-sample films and every variant of them (re-sampled, EXIF-rotated, re-encoded, 16-bit, windowed
    DICOM, mildly cropped) keep their verdict; a gray photograph and an inverted film get none."""
    from sklearn.datasets import load_sample_images

    from devtools.imaging import site_variants
    from pneumo_core.serving.predictor import Predictor

    from .conftest import SERVED_MODEL

    predictor = Predictor.load(SERVED_MODEL)
    films = (
        sorted((real_data / "site_sample" / "PNEUMONIA").iterdir())[:3]
        + sorted((real_data / "site_sample" / "NORMAL").iterdir())[:3]
    )
    for path in films:
        film = path.read_bytes()
        cases = predictor.classify([(name, payload) for name, payload in {"as stored": film, **site_variants(film)}.items()])
        assert [c.name for c in cases if c.withheld or c.error] == [], path.name
    gray_photo = np.asarray(Image.fromarray(load_sample_images().images[0]).convert("L"))
    inverted = 255 - decode_upload(films[0].read_bytes()).gray
    cases = predictor.classify([("photo", encode(gray_photo)), ("inverted", encode(inverted))])
    assert all(c.withheld for c in cases)
    upside_down = [(path.name, encode(np.rot90(decode_upload(path.read_bytes()).gray, 2).copy())) for path in films]
    assert all(c.withheld and "upside down" in c.withheld for c in predictor.classify(upside_down))


def test_film_features_are_the_pooled_map_then_each_quadrant_and_a_pooled_only_density_reads_the_first_part(tmp_path):
    from pneumo_core.common.network_outputs import film_features

    activations = np.random.default_rng(0).normal(size=(2, 7, 7, 3)).astype(np.float32)
    features = film_features(activations)
    assert features.shape == (2, 15)
    np.testing.assert_allclose(features[:, :3], activations.mean(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(features[:, 3:6], activations[:, :4, :4].mean(axis=(1, 2)), rtol=1e-6)  # top left
    np.testing.assert_allclose(features[:, 12:], activations[:, 3:, 3:].mean(axis=(1, 2)), rtol=1e-6)  # bottom right
    rng = np.random.default_rng(1)
    pooled_only = FeatureDensity.fit(rng.normal(size=(500, 3)), rng.normal(size=(200, 3)))
    np.testing.assert_allclose(pooled_only.distances(features), pooled_only.distances(features[:, :3]))


def test_a_density_in_principal_components_ignores_what_the_reference_never_varies_in(tmp_path):
    rng = np.random.default_rng(0)
    train, val = (np.c_[rng.normal(size=(n, 3)) * 5, 0.01 * rng.normal(size=(n, 20))] for n in (2000, 500))
    density = FeatureDensity.fit(train, val, components=3)
    assert density.projection.shape == (3, 23)
    inlier_shifted_in_noise = np.c_[np.zeros((1, 3)), np.full((1, 20), 0.5)]  # off the reference's span only
    outlier = np.c_[np.full((1, 3), 40.0), np.zeros((1, 20))]
    assert density.distances(inlier_shifted_in_noise)[0] < density.limit < density.distances(outlier)[0]
    density.save(tmp_path)
    loaded = FeatureDensity.load(tmp_path)
    np.testing.assert_allclose(loaded.distances(val[:5]), density.distances(val[:5]), rtol=1e-4)
