"""The audit chain's shortcuts (a session's secret ordering kept between events, a timestamp
prefix kept for a second) never let a secret through or a wrong time in."""

from __future__ import annotations

import dataclasses
import io
import json
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from brokergate import AuditLog, Secret, register_secret
from brokergate.engine._audit import render_json
from brokergate.machines import Transitioned


def _events(sink: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in sink.getvalue().splitlines()]


def test_a_secret_the_session_learns_later_is_scrubbed_from_the_next_event() -> None:
    sink = io.StringIO()
    secrets = ["pw-first-1"]
    log = AuditLog.to_stream(sink).session(broker="qst", session_id="s", account="a",
                                           secrets=secrets)
    log.info("one", detail="pw-first-1 and tok-later-2")
    secrets.append("tok-later-2")  # as LoginModel.keep_secret does with a token it obtains
    log.info("two", detail="pw-first-1 and tok-later-2")
    secrets[0] = "pw-swapped-3"  # same length, different contents
    log.info("three", detail="pw-swapped-3")
    one, two, three = _events(sink)
    assert one["detail"] == "[REDACTED] and tok-later-2"
    assert two["detail"] == "[REDACTED] and [REDACTED]"
    assert three["detail"] == "[REDACTED]"


def test_a_secret_registered_after_binding_is_scrubbed_from_the_next_event() -> None:
    sink = io.StringIO()
    log = AuditLog.to_stream(sink).session(broker="qst", session_id="s", account="a",
                                           secrets=["pw-x-4"])
    log.info("before", detail="proc-wide-5")
    register_secret("proc-wide-5")
    log.info("after", detail="proc-wide-5 pw-x-4")
    before, after = _events(sink)
    assert before["detail"] == "proc-wide-5"
    assert after["detail"] == "[REDACTED] [REDACTED]"


class _Kind(StrEnum):
    LEAKY = "kind-pw-y-6"


def test_every_kind_of_value_is_still_scrubbed() -> None:
    sink = io.StringIO()
    log = AuditLog.to_stream(sink).session(broker="qst", session_id="s", account="a",
                                           secrets=["pw-y-6", "pw-y-6-longer"])
    log.info("mixed", text="pw-y-6-longer", sub=_Kind.LEAKY, raw=b"pw-y-6", obj=Secret("z"),
             items=("pw-y-6", 1), nested={"k": ["pw-y-6"]}, number=7, flag=True, nothing=None,
             other=ValueError("pw-y-6"))
    [event] = _events(sink)
    assert "pw-y-6" not in json.dumps(event)
    assert event["text"] == "[REDACTED]"  # the longer secret went first, whole
    assert event["obj"] == "[REDACTED]" and event["number"] == 7 and event["flag"] is True
    assert event["nothing"] is None


def test_timestamps_are_utc_with_microseconds_and_now() -> None:
    sink = io.StringIO()
    log = AuditLog.to_stream(sink).session(broker="qst", session_id="s", account="a",
                                           secrets=[])
    before = datetime.now(UTC)
    for n in range(3):
        log.info("tick", n=n)
    after = datetime.now(UTC)
    for event in _events(sink):
        text = event["timestamp"]
        assert len(text) == len("2026-11-21T08:30:00.000123Z") and text.endswith("Z")
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
        assert before - timedelta(microseconds=1) <= stamp <= after


def test_the_encoder_made_once_writes_what_the_standard_one_writes() -> None:
    # Every JSON type an event can hold after redaction, with the awkward cases of each.
    event = {"text": 'é "quoted" \n\t\x00 ☃ \U0001f600', "int": -(10**30), "float": 0.1,
             "tiny": 5e-324, "nan": float("nan"), "inf": float("inf"),
             "neg_inf": float("-inf"), "true": True, "false": False, "none": None,
             "list": [1, "two", [3.5, None], {"k": "v"}], "nested": {"a": {"b": []}},
             "empty": {}}
    assert render_json(None, "info", event) == json.JSONEncoder().encode(event)
    assert render_json(None, "info", event) == json.dumps(event)


def test_a_transition_event_holds_every_field_of_its_record_in_order() -> None:
    sink = io.StringIO()
    log = AuditLog.to_stream(sink).session(broker="qst", session_id="s-1", account="a",
                                           secrets=["pw-z-7"])
    record = Transitioned("closed", "authenticated", "backoff", 3, 2, reason="closed",
                          close_code=1006, delay=1.25, detail="close 1006 pw-z-7")
    log.transition(record)
    [line] = sink.getvalue().splitlines()
    event = json.loads(line)
    assert list(event) == ["broker", "session_id", "account",
                           *(f.name for f in dataclasses.fields(Transitioned)),
                           "event", "timestamp"]
    assert event["detail"] == "close 1006 [REDACTED]" and event["delay"] == 1.25
    assert event["event"] == "transition" and event["close_code"] == 1006
