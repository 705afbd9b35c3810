"""Model directories: safe loading with the SHA-256 check, atomic promotion and roll-back."""

import json
import shutil

import numpy as np
import pytest

from pneumo_core.store.model_dir import (
    METADATA_FILE,
    MODEL_FILE,
    ModelLoadError,
    load_model_dir,
    promote,
    read_metadata,
    roll_back,
)


def test_round_trip_keeps_weights_and_metadata(tiny_model_dir):
    model, metadata = load_model_dir(tiny_model_dir)
    assert metadata["input_size"] == 64 and len(metadata["model_sha256"]) == 64
    assert getattr(model, "optimizer", None) is None  # served files carry no optimizer state
    assert model.predict(np.zeros((1, 64, 64, 3), np.float32), verbose=0).shape == (1, 1)


def test_a_trained_model_is_saved_without_its_optimizer_state(tmp_path):
    import zipfile

    import h5py
    import keras

    from pneumo_core.modeling.saving import save_model_dir

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="logit")(keras.layers.Dense(8)(inputs)))
    model.compile(keras.optimizers.AdamW(1e-3), "mse")
    model.fit(np.ones((8, 4)), np.ones((8, 1)), verbose=0)
    save_model_dir(model, tmp_path / "trained", {"input_size": 4})
    with zipfile.ZipFile(tmp_path / "trained" / MODEL_FILE) as archive:
        archive.extract("model.weights.h5", tmp_path)
    with h5py.File(tmp_path / "model.weights.h5") as weights:
        assert "optimizer" not in weights
    loaded, _ = load_model_dir(tmp_path / "trained")
    assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), model.get_weights()))


def test_changed_model_file_is_refused(tiny_model_dir, tmp_path):
    copy = tmp_path / "tampered"
    shutil.copytree(tiny_model_dir, copy)
    with open(copy / MODEL_FILE, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelLoadError, match="does not match its metadata"):
        load_model_dir(copy)


def test_changed_tflite_file_is_refused(tmp_path):
    """The served model's TFLite copy is checked like its Keras file (copied, then one byte appended)."""
    from pneumo_core.serving.predictor import Predictor
    from pneumo_core.store.model_dir import TFLITE_FILE

    from .conftest import SERVED_MODEL

    copy = tmp_path / "served"
    shutil.copytree(SERVED_MODEL, copy, ignore=shutil.ignore_patterns(MODEL_FILE, "evaluation"))
    with open(copy / TFLITE_FILE, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelLoadError, match="model.tflite .* does not match its metadata"):
        Predictor.load(copy, runtime="tflite")


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="No model found"):
        load_model_dir(tmp_path / "nothing")


def test_promote_then_roll_back(tiny_model_dir, tmp_path):
    served = tmp_path / "models" / "served"
    served.parent.mkdir()
    first = tmp_path / "first"
    shutil.copytree(tiny_model_dir, first)
    second = tmp_path / "second"
    shutil.copytree(tiny_model_dir, second)
    metadata = json.loads((second / METADATA_FILE).read_text())
    (second / METADATA_FILE).write_text(json.dumps({**metadata, "name": "second"}))

    assert promote(first, served) is None
    assert read_metadata(served)["name"] == "tiny-test-model"
    previous = promote(second, served)
    assert read_metadata(served)["name"] == "second" and read_metadata(previous)["name"] == "tiny-test-model"
    assert sorted(p.name for p in served.parent.iterdir()) == ["served", "served.previous"]  # no staging left
    roll_back(served)
    assert read_metadata(served)["name"] == "tiny-test-model" and read_metadata(previous)["name"] == "second"
    load_model_dir(served)


def test_promote_refuses_a_folder_without_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError):
        promote(tmp_path / "empty", tmp_path / "served")
    assert not (tmp_path / "served").exists()


def test_readers_never_miss_the_served_model_while_it_is_promoted_and_rolled_back(tiny_model_dir, tmp_path):
    """Promotions and roll-backs back to back while another thread keeps reading and loading the served model."""
    import threading

    from pneumo_core.serving.predictor import Predictor

    served, other = tmp_path / "served", tmp_path / "other"
    shutil.copytree(tiny_model_dir, served)
    shutil.copytree(tiny_model_dir, other)
    metadata = json.loads((other / METADATA_FILE).read_text())
    (other / METADATA_FILE).write_text(json.dumps({**metadata, "name": "other-model"}))
    stop, swaps, problems = threading.Event(), [0], []

    def swap() -> None:
        promote(other, served)
        while not stop.is_set():
            roll_back(served)
            swaps[0] += 1

    swapper = threading.Thread(target=swap)
    swapper.start()
    names, loads = set(), 0
    try:
        for index in range(3000):
            try:
                names.add(read_metadata(served)["name"])
                if index % 600 == 0:
                    Predictor.load(served, runtime="tensorflow")
                    loads += 1
            except (ModelLoadError, OSError, ValueError) as error:
                problems.append(repr(error))
    finally:
        stop.set()
        swapper.join()
    assert problems == []
    assert swaps[0] > 20 and loads == 5 and names == {"tiny-test-model", "other-model"}
