"""The operator rule, the password throttle and the operator-action log (no Streamlit)."""

import pytest

from pneumo_core.operations.access import OperatorMode, Throttle, is_loopback, operator_mode, password_matches
from pneumo_core.operations.audit import recent_actions, record_action


@pytest.mark.parametrize("address", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"])
def test_loopback_addresses(address):
    assert is_loopback(address)


@pytest.mark.parametrize("address", [None, "", "0.0.0.0", "::", "192.168.1.20", "example.org"])
def test_addresses_reachable_by_others(address):
    assert not is_loopback(address)


def test_operator_mode_rule():
    assert operator_mode("pw", "0.0.0.0") is OperatorMode.PASSWORD
    assert operator_mode("pw", "127.0.0.1") is OperatorMode.PASSWORD
    assert operator_mode(None, "127.0.0.1") is OperatorMode.LOCAL
    assert operator_mode(None, "0.0.0.0") is OperatorMode.CLOSED
    assert operator_mode(None, None) is OperatorMode.CLOSED  # Streamlit's default binds every interface
    assert operator_mode(None, "127.0.0.1", public=True) is OperatorMode.CLOSED
    assert operator_mode(None, "127.0.0.1", forwarded=True) is OperatorMode.CLOSED  # reached through a proxy


def test_password_comparison():
    assert password_matches("s3cret", "s3cret")
    assert not password_matches("s3cre", "s3cret") and not password_matches("", "s3cret")


def test_throttle_locks_after_free_failures_and_grows():
    now = [0.0]
    throttle = Throttle(free=2, max_seconds=60, forget_seconds=600, clock=lambda: now[0])
    assert throttle.check("a", "pw") is False and throttle.check("b", "pw") is False
    assert throttle.retry_after() == 2.0
    assert throttle.check("pw", "pw") is None  # locked: not even compared
    now[0] += 2.0
    assert throttle.check("c", "pw") is False
    assert throttle.retry_after() == 4.0  # doubles
    now[0] += 4.0
    assert throttle.check("pw", "pw") is True
    assert throttle.retry_after() == 0.0  # a success resets


def test_throttle_forgets_old_failures():
    now = [0.0]
    throttle = Throttle(free=1, forget_seconds=10, clock=lambda: now[0])
    throttle.check("a", "pw")
    throttle.check("b", "pw")
    assert throttle.retry_after() > 0
    now[0] += 11
    assert throttle.retry_after() == 0.0


def test_operator_actions_are_recorded_newest_first(tmp_path):
    log = tmp_path / "actions.jsonl"
    record_action("promote", "model-a", "served", "operator (local)", path=log, replaced="model-b")
    record_action("roll back", "model-b", "served", "operator (local)", path=log)
    with log.open("a") as handle:
        handle.write('{"half-written')
    actions = recent_actions(path=log)
    assert [a["action"] for a in actions] == ["roll back", "promote"]
    assert actions[1]["details"] == {"replaced": "model-b"}
    assert set(actions[0]) == {"time", "action", "target", "outcome", "actor"}
