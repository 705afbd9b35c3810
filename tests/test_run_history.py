"""The training-runs table: readable columns, and a run whose process died is ended as KILLED in the store."""

import json

import mlflow

from pneumo_core.jobs.history import recent_runs


def test_a_running_run_whose_process_is_gone_is_marked_killed(tmp_path):
    client = mlflow.MlflowClient()
    experiment = "history-test"
    experiment_id = client.create_experiment(experiment)
    dead = client.create_run(experiment_id, run_name="dead-run").info.run_id  # stays RUNNING, as after a SIGKILL
    (tmp_path / "dead-run").mkdir()
    (tmp_path / "dead-run" / "progress.jsonl").write_text(json.dumps({"event": "start", "time": 0, "pid": 2**22 + 7}) + "\n")
    finished = client.create_run(experiment_id, run_name="good-run").info.run_id
    client.log_metric(finished, "internal_test_roc_auc", 0.99)
    client.set_terminated(finished, "FINISHED")

    table = recent_runs(experiment=experiment, runs_root=tmp_path)
    assert list(table.columns[:3]) == ["run", "status", "started"] and "internal test ROC AUC" in table.columns
    rows = table.set_index("run")
    assert rows.loc["dead-run", "status"] == "killed or cancelled" and rows.loc["good-run", "status"] == "finished"
    assert rows.loc["good-run", "internal test ROC AUC"] == 0.99 and rows.loc["dead-run", "internal test ROC AUC"] == ""
    assert client.get_run(dead).info.status == "KILLED"  # recorded in the store, not only shown
