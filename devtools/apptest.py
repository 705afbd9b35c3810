"""Helpers for the app's page tests (Streamlit's ``AppTest``): run a page, read its text, bind a server address,
unlock the operator actions."""

from __future__ import annotations

import contextlib

from streamlit.testing.v1 import AppTest

from devtools.harness import PROJECT_ROOT

APP = str(PROJECT_ROOT / "streamlit_app.py")
TIMEOUT = 120


@contextlib.contextmanager
def bind_address(address: str | None):
    """Streamlit's ``server.address`` option for AppTest runs (they bind nothing: the option is only read)."""
    from streamlit import config

    before = config.get_option("server.address")
    config.set_option("server.address", address)
    try:
        yield
    finally:
        config.set_option("server.address", before)


def run_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = (
        [m.value for m in at.markdown]
        + [m.value for m in at.caption]
        + [e.value for e in at.error]
        + [w.value for w in at.warning]
    )
    parts += [i.value for i in at.info] + [t.value for t in at.title] + [s.value for s in at.subheader]
    return "\n".join(str(p) for p in parts)


def probability_lines(at) -> list[str]:
    """The "Probability of pneumonia: P, below/above the threshold of T" line of each answered film."""
    return [m.value for m in at.markdown if m.value.startswith("Probability of pneumonia:")]


OPERATOR_CONTROLS = (
    "Start training",
    "Cancel training",
    "Promote the new model",
    "Roll back to the previous model",
)


def operator_controls(at: AppTest) -> list[str]:
    return [b.label for b in at.button if b.label in OPERATOR_CONTROLS]


def unlock(at: AppTest, password: str) -> AppTest:
    at.text_input(key="operator_password").set_value(password)
    return next(b for b in at.button if b.label == "Unlock operator actions").click().run()


class NoJob:
    """Stands in for a launched job (what ``start_job`` returns) where a test looks only at the arguments."""

    run_name, pid = "captured", 0
