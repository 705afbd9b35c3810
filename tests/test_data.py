from pathlib import Path

import numpy as np
import pytest

from devtools.imaging import encode, synthetic_xray
from pneumo_core.common.films import class_root, list_labelled_images, patient_id
from pneumo_core.training.split import manifest_hash, split_by_patient


@pytest.mark.parametrize(
    "name, patient",
    [
        ("person1000_bacteria_2931.jpeg", "person1000"),
        ("person447_virus_921_1.jpeg", "person447"),
        ("IM-0115-0001.jpeg", "IM-0115"),
        ("IM-0429-0001-0002.jpeg", "IM-0429"),
        ("NORMAL2-IM-0383-0001.jpeg", "NORMAL2-IM-0383"),
        ("upload.png", "upload"),
    ],
)
def test_patient_id_from_kermany_names(name, patient):
    assert patient_id(name) == patient


def test_real_split_is_grouped_by_patient_and_stratified(real_data):
    frame = split_by_patient(list_labelled_images(class_root(real_data)), seed=42)
    assert len(frame) == 5216
    splits_per_patient = frame.groupby("patient")["split"].nunique()
    assert splits_per_patient.max() == 1, "a patient appears in two splits"
    splits_per_file_content = frame.groupby("sha256")["split"].nunique()
    assert splits_per_file_content.max() == 1, "identical files appear in two splits"
    share = frame["split"].value_counts(normalize=True)
    assert share["val"] == pytest.approx(0.15, abs=0.02) and share["test"] == pytest.approx(0.15, abs=0.02)
    positive_rate = frame.groupby("split")["label"].mean()
    assert positive_rate.max() - positive_rate.min() < 0.02
    again = split_by_patient(list_labelled_images(class_root(real_data)), seed=42)
    assert manifest_hash(frame) == manifest_hash(again)


def _write(folder: Path, name: str, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def test_identical_files_of_different_patients_stay_together(tmp_path):
    for i in range(20):
        _write(tmp_path / "NORMAL", f"IM-{i:04d}-0001.jpeg", encode(synthetic_xray(seed=i)))
        _write(tmp_path / "PNEUMONIA", f"person{i}_bacteria_{i}.jpeg", encode(synthetic_xray(seed=100 + i)))
    copy = (tmp_path / "NORMAL" / "IM-0003-0001.jpeg").read_bytes()
    _write(tmp_path / "NORMAL", "IM-0999-0001.jpeg", copy)  # a duplicate filed under another patient id
    frame = split_by_patient(list_labelled_images(tmp_path), val_fraction=0.25, test_fraction=0.25, seed=1)
    pair = frame[frame["file"].isin(["NORMAL/IM-0003-0001.jpeg", "NORMAL/IM-0999-0001.jpeg"])]
    assert pair["split"].nunique() == 1 and pair["group"].nunique() == 1
    assert set(frame["split"]) == {"train", "val", "test"}


def test_class_root_prefers_split_folder(tmp_path):
    _write(tmp_path / "train" / "NORMAL", "IM-0001-0001.jpeg", encode(synthetic_xray()))
    assert class_root(tmp_path, "train") == tmp_path / "train"
    assert class_root(tmp_path / "train", "train") == tmp_path / "train"
    with pytest.raises(FileNotFoundError):
        list_labelled_images(tmp_path / "missing")


def test_manifest_hash_changes_with_the_split(real_data):
    frame = split_by_patient(list_labelled_images(class_root(real_data)), seed=42)
    moved = frame.copy()
    moved.loc[moved.index[0], "split"] = "val" if moved.loc[moved.index[0], "split"] != "val" else "train"
    assert manifest_hash(frame) != manifest_hash(moved)
    assert np.all(frame["file"].str.startswith(("NORMAL/", "PNEUMONIA/")))
