"""The operator gate in the app: which sessions may train, promote, roll back or recalibrate.

The rule lives in :mod:`pneumo_core.operations.access`; this module feeds it the server's bind
address and the request's proxy headers, asks for the password when one is
configured, and names who acted in the operator-action log.
"""

from __future__ import annotations

import streamlit as st

from pneumo_core.config import AccessSettings, access_settings
from pneumo_core.operations.access import OperatorMode, Throttle, operator_mode

SESSION_KEY = "operator_unlocked"
PROXY_HEADERS = ("X-Forwarded-For", "X-Real-Ip", "Forwarded")


_THROTTLE = Throttle()
"""One per server process: every session's wrong passwords count together."""


def current_mode() -> OperatorMode:
    headers = st.context.headers or {}
    forwarded = any(headers.get(name) for name in PROXY_HEADERS)
    access = access_settings()
    return operator_mode(access.operator_password, st.get_option("server.address"), access.public, forwarded)


def operator_actor() -> str:
    """How the operator-action log names whoever acts in this session (no personal data)."""
    return "operator (password)" if current_mode() is OperatorMode.PASSWORD else "operator (local)"


def is_operator(ask: bool = True) -> bool:
    """Whether this session may run operator actions; with ``ask``, shows the password box or the reason why not."""
    mode = current_mode()
    if mode is OperatorMode.LOCAL:
        return True
    if mode is OperatorMode.CLOSED:
        if ask:
            st.info(
                "Operator actions (training, promotion, roll-back, site calibration) are off: this server is reachable "
                f"from other machines and no operator password is set. Set `{AccessSettings.variable('operator_password')}` or "
                "`[operator] password` in `.streamlit/secrets.toml` to enable them.",
                icon=":material/lock:",
            )
        return False
    if st.session_state.get(SESSION_KEY):
        return True
    if ask:
        _password_form()
    return bool(st.session_state.get(SESSION_KEY))


def _password_form() -> None:
    with st.form("operator_login", clear_on_submit=True, border=False):
        given = st.text_input("Operator password", type="password", key="operator_password")
        submitted = st.form_submit_button("Unlock operator actions")
    if not submitted:
        return
    throttle = _THROTTLE
    outcome = throttle.check(given, access_settings().operator_password or "")
    if outcome:
        st.session_state[SESSION_KEY] = True
        st.rerun()  # the page again, signed in: the password box goes at once
    elif outcome is None:
        st.error(f"Too many wrong passwords: try again in {throttle.retry_after():.0f} s.", icon=":material/timer:")
    else:
        wait = throttle.retry_after()
        st.error("Wrong password." + (f" The next try is accepted in {wait:.0f} s." if wait else ""))


def signed_in_status() -> None:
    """For a session signed in with the operator password: say so, and offer to sign out (drawn once, in the
    sidebar)."""
    if current_mode() is not OperatorMode.PASSWORD or not st.session_state.get(SESSION_KEY):
        return
    st.success("Signed in as operator.", icon=":material/lock_open:")
    if st.button("Sign out", key="operator_sign_out", icon=":material/logout:"):
        st.session_state.pop(SESSION_KEY, None)
        st.rerun()


class OperatorRequired(PermissionError):
    """An operator action was asked for by a session that is not an operator."""


def require_operator() -> str:
    """The actor's name for the log, or :class:`OperatorRequired` (every operator action calls this first)."""
    if not is_operator(ask=False):
        raise OperatorRequired("This action needs the operator role.")
    return operator_actor()
