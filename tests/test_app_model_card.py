"""The Model card page in AppTest."""

from __future__ import annotations

from devtools.apptest import (
    run_page,
    texts,
)


def test_model_card_page(app_env):
    at = run_page("app_pages/model_card.py")
    assert "Intended use" in texts(at) and "tiny-test-model" in texts(at) and "served by **TensorFlow**" in texts(at)
    assert "<!--" not in texts(at) and "generated:" not in texts(at)  # the card's block markers are not shown
