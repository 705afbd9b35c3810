"""The Metrics page in AppTest: the dashboard, the threshold explorer, the error gallery."""

from __future__ import annotations

from devtools.apptest import (
    run_page,
    texts,
)


def test_metrics_page_with_and_without_data_folder(app_env, monkeypatch, tmp_path):
    at = run_page("app_pages/metrics.py")
    assert "95% intervals by patient" in texts(at)
    published = next(f.value for f in at.dataframe if "reference (official 624-image test split)" in f.value)
    assert all(isinstance(v, str) for column in published.columns[1:] for v in published[column])  # one type a column
    metric_names = set(next(f.value for f in at.dataframe if "metric" in f.value)["metric"])
    assert not metric_names & {"f1", "pr_auc"}  # plain names only
    at.slider(key="explore_threshold").set_value(0.2).run()
    assert not at.exception
    grid_captions = lambda: [i.caption for e in at.get("image") for i in e.proto.imgs if "evidence for" in i.caption]  # noqa: E731
    answer = at.radio(key="grid_class").value  # "the answer (NORMAL)": the class the cell's films were called
    assert grid_captions() and all(c.endswith(f"evidence for {answer[12:-1]}") for c in grid_captions())
    cell = next(c.value for c in at.caption if "called at threshold 0.200" in c.value)
    assert "the serving point refers to a radiologist instead" in cell  # the binary call, and what serving does
    for explained in ("PNEUMONIA", "NORMAL"):  # the misclassified films' maps, for either class
        at.radio(key="grid_class").set_value(explained).run()
        assert not at.exception and grid_captions() and all(c.endswith(f"evidence for {explained}") for c in grid_captions())
    monkeypatch.setenv("PNEUMO_DATA_DIR", str(tmp_path / "no-data"))
    at = run_page("app_pages/metrics.py")
    assert "not available" in texts(at)
