"""The Site profiles page in AppTest: validating on a site's labelled films, saving and activating its profile."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from devtools.apptest import (
    TIMEOUT,
    bind_address,
    run_page,
    texts,
)


def test_validate_on_your_data_saves_and_activates_a_site_profile(app_env, app_model_dir):
    import shutil

    from pneumo_core.store.profiles import active_profile, list_profiles

    assert "No site profile yet" in texts(run_page("app_pages/metrics.py"))
    at = run_page("app_pages/site_profiles.py")
    next(t for t in at.text_input if t.label == "Site name").set_value("north")
    next(s for s in at.selectbox if s.label == "Threshold rule").set_value("youden")
    next(b for b in at.button if b.label == "Validate").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Site north" in texts(at) and "optimistic" in texts(at)
    operating_points = [str(p) for frame in at.dataframe for p in frame.value.get("operating point", [])]
    assert any(p.endswith("95% confidence") for p in operating_points), operating_points  # the promise's row
    assert "Promised for this site's next" in texts(at)
    try:
        next(b for b in at.button if b.label == "Save and serve at this operating point").click().run()
        assert list_profiles(app_model_dir) == ["north"] and active_profile(app_model_dir).name == "north"
        at = run_page("app_pages/metrics.py")
        assert "site profile north" in texts(at) and "Serving at **site profile north**" in texts(at)
        assert any("site north" in str(row) for row in at.dataframe[0].value["data"])
        # the explorer starts at the serving operating point, can switch to validation and return
        profile, metadata = active_profile(app_model_dir), json.loads((app_model_dir / "metadata.json").read_text())
        slider = next(s for s in at.slider if s.key == "explore_threshold")
        assert slider.value == pytest.approx(profile.threshold)
        assert "Referral bands" in texts(at) and "Expected" not in "".join(b.label for b in at.button)
        next(r for r in at.radio if r.key == "explore_point").set_value("validation threshold").run()
        assert next(s for s in at.slider if s.key == "explore_threshold").value == pytest.approx(metadata["threshold"])
        next(s for s in at.slider if s.key == "explore_threshold").set_value(0.9).run()
        next(b for b in at.button if b.key == "reset_threshold").click().run()
        assert next(s for s in at.slider if s.key == "explore_threshold").value == pytest.approx(metadata["threshold"])
        at = run_page("app_pages/site_profiles.py")
        next(b for b in at.button if b.label == "Serve at the validation threshold again").click().run()
        assert active_profile(app_model_dir) is None
        from pneumo_core.operations.audit import recent_actions

        assert [a["outcome"] for a in recent_actions()] == ["deactivated: validation threshold", "saved and activated"]
    finally:
        shutil.rmtree(app_model_dir / "site_profiles", ignore_errors=True)


def test_validate_on_your_data_is_closed_to_viewers_of_an_exposed_server(app_env):
    with bind_address("0.0.0.0"):
        at = run_page("app_pages/site_profiles.py")
        assert "Validate on your data" in texts(at) and "no operator password is set" in texts(at)
        assert not any(b.label == "Validate" for b in at.button)


def test_a_site_profile_is_saved_and_activated_where_the_served_model_is(app_env, app_model_dir, tmp_path, monkeypatch):
    """Serving a registry version (PNEUMO_MODEL_URI), a profile goes into that version's directory, not models/served."""
    import shutil

    from pneumo_core.store import mlflow_registry
    from pneumo_core.store.profiles import active_profile, list_profiles

    registry_copy = shutil.copytree(app_model_dir, tmp_path / "registry-version")
    monkeypatch.setenv("PNEUMO_MODEL_URI", "models:/pneumo-densenet121@champion")
    monkeypatch.setattr(mlflow_registry, "resolve_model_uri", lambda uri: registry_copy)

    def script():
        import json
        import os
        from pathlib import Path

        from pneumo_core.store.profiles import SiteProfile
        from ui.operator_actions import save_site_profile

        sha = json.loads((Path(os.environ["REGISTRY_COPY"]) / "metadata.json").read_text())["model_sha256"]
        empty = {"metrics": {}, "intervals": {}, "validation_operating_point": {}}
        profile = SiteProfile("north", 0.5, 1.0, "youden", "", 2, 1, 1, "data", "now", "m", sha, **empty)
        save_site_profile(profile, make_active=True)

    monkeypatch.setenv("REGISTRY_COPY", str(registry_copy))
    at = AppTest.from_function(script, default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    assert list_profiles(registry_copy) == ["north"] and active_profile(registry_copy).name == "north"
    assert list_profiles(app_model_dir) == []  # the directory not served is left alone
