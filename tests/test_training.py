"""Training end to end on a handful of real images: one smoke run, then resume, registry and ensemble on it."""

import json

import mlflow
import pytest

from pneumo_core.jobs.progress import job_status, read_progress
from pneumo_core.jobs.request import TrainConfig
from pneumo_core.store.model_dir import load_model_dir
from pneumo_core.training.trainer import Trainer, run_training

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_run(real_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    # Without augmentation (the cancellation test in test_training_runs.py trains with it): this path once crashed
    # with a NameError. Streamed from the files, as a data set over the memory budget is (the transfer and
    # cancellation runs keep their films in memory).
    config = TrainConfig(
        data_dir=str(real_data),
        base_weights="none",
        output_dir=str(out),
        run_name="smoke",
        smoke=True,
        augment=False,
        scratch_schedule="48:1:8,64:1:8",  # progressive resizing: two phases, for the resume test
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PNEUMO_TRAIN_MEMORY_MB", "0")
        return run_training(config), out / "smoke"


def test_smoke_run_writes_a_complete_model_directory(smoke_run):
    candidate, run_dir = smoke_run
    loading = next(e for e in read_progress(run_dir / "progress.jsonl") if e.get("phase") == "loading")
    assert loading["streamed"] and loading["films"] == 32  # over the (zero) memory budget: streamed from the files
    model, metadata = load_model_dir(candidate)
    assert metadata["recipe"] == "scratch" and metadata["base_weights"].startswith("none")
    assert metadata["input_size"] == 64 and metadata["split_sizes"] == {"train": 16, "val": 8, "test": 8}
    assert 0 <= metadata["threshold"] <= 1 and metadata["temperature"] > 0
    assert set(metadata["metrics"]) == {"val", "test"} and "roc_auc" in metadata["metrics"]["test"]
    assert len(metadata["data_manifest_sha256"]) == 16 and metadata["git_commit"]
    predictions = (candidate / "evaluation" / "test_predictions.csv").read_text().splitlines()
    assert len(predictions) == 9 and predictions[0].startswith("file,label,logit,probability,predicted,correct")
    manifest = (run_dir / "manifest.csv").read_text().splitlines()
    assert manifest[0] == "file,label,patient,group,split,sha256" and len(manifest) == 33


def test_smoke_run_progress_and_mlflow(smoke_run):
    _, run_dir = smoke_run
    events = read_progress(run_dir / "progress.jsonl")
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and "epoch" in kinds
    assert job_status(run_dir / "progress.jsonl").state == "done"
    epoch = next(e for e in events if e["event"] == "epoch")
    assert {"phase", "epoch", "epochs", "metrics", "eta_s"} <= set(epoch) and "val_auc" in epoch["metrics"]
    state = json.loads((run_dir / "state.json").read_text())
    run = mlflow.get_run(state["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["base_weights_used"].startswith("none") and "data_manifest_sha256" in run.data.params
    assert run.data.params["aug"] == "off" and "aug_gamma" not in run.data.params
    assert {"internal_test_roc_auc", "final_val_sensitivity", "temperature", "threshold", "val_auc"} <= set(run.data.metrics)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"manifest.csv", "evaluation", "model"} <= artifacts


def test_a_promotion_is_tagged_on_the_models_run(smoke_run):
    from pneumo_core.store.mlflow_registry import tag_serving_change

    candidate, _ = smoke_run
    metadata = json.loads((candidate / "metadata.json").read_text())
    assert tag_serving_change(metadata, "promoted", "operator (local)")
    tags = mlflow.get_run(metadata["mlflow_run_id"]).data.tags
    assert tags["pneumo.promoted_by"] == "operator (local)" and tags["pneumo.promoted_at"].startswith("20")
    assert not tag_serving_change({"name": "no run here"}, "promoted", "x")


def test_resume_skips_finished_phases(smoke_run, real_data):
    candidate, run_dir = smoke_run
    config = TrainConfig(**json.loads((run_dir / "config.json").read_text()))
    trainer = Trainer(config, resume=True)
    assert trainer.state["completed"] == ["scratch_48px", "scratch_64px"]  # progressive resizing: two phases
    trainer.run()  # no training left: only evaluation runs again
    phases = [e["phase"] for e in read_progress(run_dir / "progress.jsonl") if e["event"] == "phase"]
    # the resumed run only loads the films again and re-evaluates
    assert phases == ["loading", "scratch_48px", "scratch_64px", "evaluate", "loading", "evaluate"]


def test_a_run_registers_a_version_and_serving_changes_move_the_aliases(smoke_run, tmp_path, monkeypatch, capsys):
    """Registry (MLflow, the test store): the smoke run's version; promote → champion; promote another version by
    number → champion and previous; roll back (the CLI) → swapped back; models/served in step throughout."""
    from pneumo_core.cli.main import main
    from pneumo_core.operations.promotion import promote_candidate, promote_version
    from pneumo_core.store import mlflow_registry as registry_aliases
    from pneumo_core.store.model_dir import read_metadata

    candidate, _ = smoke_run
    metadata = read_metadata(candidate)
    first = metadata["registry_version"]
    client = registry_aliases._client()
    stored = client.get_model_version(registry_aliases.REGISTERED_MODEL, first)
    assert stored.run_id == metadata["mlflow_run_id"] and stored.tags["model_sha256"] == metadata["model_sha256"]
    assert stored.tags["data_manifest_sha256"] == metadata["data_manifest_sha256"] and "Intended use" in stored.description

    served = tmp_path / "models" / "served"
    monkeypatch.setenv("PNEUMO_MODEL_DIR", str(served))
    record = promote_candidate(candidate, "test")
    assert record["details"]["registry_aliases_moved"] and registry_aliases.alias_version("champion") == first

    second = registry_aliases.register_version(stored.run_id, stored.source, metadata, "the same model, again")
    promote_version(second, "test")
    assert read_metadata(served)["registry_version"] == second
    assert (registry_aliases.alias_version("champion"), registry_aliases.alias_version("previous")) == (second, first)

    assert main(["rollback"]) == 0 and json.loads(capsys.readouterr().out)["details"]["registry_version"] == first
    assert read_metadata(served)["registry_version"] == first
    assert (registry_aliases.alias_version("champion"), registry_aliases.alias_version("previous")) == (first, second)
    assert main(["promote", "999"]) == 3 and "could not be fetched" in capsys.readouterr().err

    assert main(["challenger", second]) == 0 and registry_aliases.alias_version("challenger") == second
    assert main(["challenger", "--clear"]) == 0 and registry_aliases.alias_version("challenger") is None
    assert main(["challenger", "999"]) == 2 and "not set" in capsys.readouterr().err
    assert main(["challenger"]) == 2  # a version or --clear
    registry_aliases.set_challenger(second)
    promote_version(second, "test")  # a challenger that is promoted is no longer the challenger
    assert registry_aliases.alias_version("challenger") is None
    main(["rollback"])
    capsys.readouterr()

    from pneumo_core.serving.predictor import Predictor
    from pneumo_core.store.model_dir import ModelLoadError

    monkeypatch.setenv("PNEUMO_MODEL_URI", "models:/pneumo-densenet121@previous")  # serve straight from the registry
    served_from_registry = Predictor.load()
    assert served_from_registry.metadata["registry_version"] == second
    assert served_from_registry.metadata["model_sha256"] == metadata["model_sha256"]
    monkeypatch.setenv("PNEUMO_MODEL_URI", "models:/pneumo-densenet121@nobody")
    with pytest.raises(ModelLoadError, match="could not be fetched"):
        Predictor.load()


def test_an_ensemble_run_combines_members_trained_on_its_split_and_refuses_others(smoke_run, real_data, tmp_path):
    """``--ensemble-of``: the smoke run's DenseNet and an EfficientNetV2-B0 saved with the same manifest become one
    calibrated, measured candidate whose test logits are the mean of the members'; a member of another split is refused."""
    import keras
    import numpy as np
    import pandas as pd

    from pneumo_core.modeling.architectures import build_classifier
    from pneumo_core.modeling.graphs import KerasNetwork
    from pneumo_core.modeling.saving import save_model_dir
    from pneumo_core.serving.loading import load_canonical_films
    from pneumo_core.store.model_dir import read_metadata

    candidate, _ = smoke_run
    smoke_metadata = read_metadata(candidate)
    keras.utils.set_random_seed(1)
    other = build_classifier(64, None, head_units=8, architecture="efficientnetv2b0")
    other_dir = save_model_dir(other, tmp_path / "effnet", {**smoke_metadata, "name": "effnet"})
    config = TrainConfig(
        data_dir=str(real_data), output_dir=str(tmp_path), run_name="ensemble", smoke=True, ensemble_of=f"{candidate},{other_dir}"
    )
    ensemble_dir = run_training(config)
    model, metadata = load_model_dir(ensemble_dir)
    assert metadata["recipe"] == "ensemble" and metadata["architecture"] == "ensemble"
    assert [m["name"] for m in metadata["members"]] == [smoke_metadata["name"], "effnet"]
    assert metadata["data_manifest_sha256"] == smoke_metadata["data_manifest_sha256"] and "roc_auc" in metadata["metrics"]["test"]

    test = pd.read_csv(ensemble_dir / "evaluation" / "test_predictions.csv")
    _, films, _ = load_canonical_films(real_data / "train", test["file"].tolist())
    members = [load_model_dir(candidate)[0], other]
    mean = np.mean([KerasNetwork(member, 64).forward(films)[0] for member in members], axis=0)
    np.testing.assert_allclose(test["logit"].to_numpy(), mean, atol=1e-4)

    stranger = save_model_dir(other, tmp_path / "stranger", {**smoke_metadata, "data_manifest_sha256": "0" * 16})
    refused = TrainConfig(data_dir=str(real_data), output_dir=str(tmp_path), smoke=True, ensemble_of=f"{candidate},{stranger}")
    with pytest.raises(ValueError, match="trained on another split"):
        run_training(refused)
    from pneumo_core.common.preprocess import EQUALIZE, preprocessing_spec

    equalizing = save_model_dir(other, tmp_path / "eq", {**smoke_metadata, "preprocessing": preprocessing_spec(EQUALIZE)})
    mixed = TrainConfig(data_dir=str(real_data), output_dir=str(tmp_path), smoke=True, ensemble_of=f"{candidate},{equalizing}")
    with pytest.raises(ValueError, match="sees its films with --intensity equalize; this run --intensity stretch"):
        run_training(mixed)
