"""Per-model policies (RULES A.3 and "Policy fields beyond ..."): the three bundled files load
with their model, existing chat policies stay valid (model absent = chat_sessions), and a wrong
field is one line naming the policy and the field."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from chatsla.core.policy import PolicyError, TicketPolicy, WaitPolicy, available, load_policy, policy_from_dict
from chatsla.core.timefmt import HOUR


def bundled(ref: str) -> dict:
    return json.loads((resources.files("chatsla") / "policies" / f"{ref}.json").read_text())


def test_every_bundled_policy_loads_with_its_model():
    models = {ref: load_policy(ref).model for ref in available()}
    assert models == {"aliexpress@seed004": "im_waits", "douyin_ticket@2024-09": "service_tickets",
                      "douyin_ticket@seed001": "service_tickets", "tiktok_shop@2023-11": "chat_sessions",
                      "tiktok_shop@2025-sea": "chat_sessions", "tiktok_aftersale@2026-01": "aftersale",
                      "tiktok_aftersale@2026-01-th": "aftersale", "tiktok_aftersale@2026-01-vn": "aftersale"}


def test_douyin_seed001_values():
    """R9.9."""
    p = load_policy("douyin_ticket@seed001")
    assert isinstance(p, TicketPolicy) and p.ref == "douyin_ticket@seed001" and p.platform == "douyin"
    assert (p.window_start, p.window_end, p.window_timezone, p.window_days) == (540, 1260, "shop", tuple(range(7)))
    assert p.ticket_sla == {"normal": 24 * HOUR, "urgent": 2 * HOUR} and p.agreed_sla_min == 2 * HOUR
    assert p.category_sla == {} and p.default_timezone == "Asia/Shanghai"
    p2 = load_policy("douyin_ticket@2024-09")
    assert len(p2.category_sla) == 11 and p2.category_sla["courier_related"] == 24 * HOUR


def test_aliexpress_seed004_values():
    """R10.6."""
    p = load_policy("aliexpress@seed004")
    assert isinstance(p, WaitPolicy) and p.percentiles == (50, 90, 99) and p.auto_reply_period == 24 * HOUR
    assert (p.wait_measured_from, p.auto_reply_ends_wait, p.default_timezone) == ("last_buyer_message", False, None)


@pytest.mark.parametrize(("ref", "path", "value", "says"), [
    ("douyin_ticket@seed001", ("service_window", "start"), "9am",
     'douyin_ticket@seed001: service_window.start: expected HH:MM, got "9am"'),
    ("douyin_ticket@seed001", ("service_window", "end"), "08:00", "service_window.end: expected a time after start"),
    ("douyin_ticket@seed001", ("service_window", "days"), ["funday"], "service_window.days: expected"),
    ("douyin_ticket@seed001", ("service_window", "timezone"), "Mars/Base", "service_window.timezone: expected"),
    ("douyin_ticket@seed001", ("ticket_sla", "urgent"), "2 hours", "ticket_sla.urgent: expected a positive duration"),
    ("douyin_ticket@seed001", ("ticket_sla",), {"normal": "24h"}, "ticket_sla: expected"),
    ("douyin_ticket@seed001", ("category_sla", "refund"), 2, "category_sla.refund: expected a positive duration"),
    ("douyin_ticket@seed001", ("agreed_sla_min",), "0h", "agreed_sla_min: expected a positive duration"),
    ("douyin_ticket@seed001", ("handled_results",), ["done"], "handled_results: expected"),
    ("douyin_ticket@seed001", ("default_timezone",), "Beijing", "default_timezone: expected an IANA time zone"),
    ("douyin_ticket@seed001", ("periods",), ["month"], "periods: expected"),
    ("douyin_ticket@seed001", ("assessment",), {"points": 1}, "assessment: expected null"),
    ("douyin_ticket@seed001", ("vacation_excludes",), True, "vacation_excludes: expected false"),
    ("douyin_ticket@seed001", ("model",), "tickets", "model: expected one of"),
    ("aliexpress@seed004", ("percentiles",), [50, 101], "percentiles[1]: expected a number in (0, 100]"),
    ("aliexpress@seed004", ("percentiles",), [], "percentiles: expected"),
    ("aliexpress@seed004", ("wait_measured_from",), "first", "wait_measured_from: expected"),
    ("aliexpress@seed004", ("auto_reply_ends_wait",), "no", "auto_reply_ends_wait: expected true or false"),
    ("aliexpress@seed004", ("auto_reply_period",), None, "auto_reply_period: expected a positive duration"),
    ("aliexpress@seed004", ("week_starts_on",), "mon", "week_starts_on: expected a weekday name"),
])
def test_a_wrong_field_is_one_line_naming_it(ref, path, value, says):
    d = bundled(ref)
    node = d
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    with pytest.raises(PolicyError) as e:
        policy_from_dict(d, origin=ref)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(ref + ": ") and says in msg, msg


def test_missing_field_is_named():
    d = bundled("douyin_ticket@seed001")
    del d["service_window"]["start"]
    with pytest.raises(PolicyError, match=r"^douyin_ticket@seed001: service_window.start: missing$"):
        policy_from_dict(d, origin="douyin_ticket@seed001")


def test_chat_policy_without_model_stays_valid_and_rejects_another_model():
    d = bundled("tiktok_shop@2023-11")
    assert "model" not in d and policy_from_dict(d).model == "chat_sessions"
    assert policy_from_dict({**d, "model": "chat_sessions"}).model == "chat_sessions"
    with pytest.raises(PolicyError, match="near_threshold_band: missing"):  # read as an R11 policy (issue #14)
        policy_from_dict({**d, "model": "aftersale"})


def test_window_ending_at_24_00_is_accepted():
    d = bundled("douyin_ticket@seed001")
    d["service_window"].update(start="00:00", end="24:00", days=["monday", "friday"])
    p = policy_from_dict(d)
    assert (p.window_start, p.window_end, p.window_days) == (0, 1440, (0, 4))
