"""``chatsla audit`` over a mixed input of the three platforms (issue #12): chat.message/v1 of
TikTok Shop and AliExpress, shop.event/v1 and ticket.event/v1 in one file; ``--policy`` repeated
(one per model), the bundled current version of each platform without it; ``tickets``, ``waits``
and ``periods`` in JSON, table and CSV. Run through the installed entry point, as a user does.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import orjson
import pytest

from chatsla.audit import run_audit
from chatsla.core.policy import current_ref, default_policies, load_policy, policies_for
from chatsla.core.timefmt import parse_time
from tests.mixed import mixed_lines
from tests.cli.test_cli import REPO, SAMPLE, one_error_line, run

UNTIL = "2026-11-20T00:00:00Z"
OLD_WEEK_SHA256 = "2371944d3456573ba069d86ceb2a977e800e7926ffd3c4494b4d4505d3bc291c"  # before issue #12


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("mixed") / "mixed.jsonl"
    p.write_bytes(b"\n".join(mixed_lines(7)) + b"\n")
    return p


def audit_json(*args: str) -> dict:
    r = run(["audit", *args, "--format", "json", "-q"])
    assert r.returncode == 0, r.stderr.decode()
    return orjson.loads(r.stdout)


def test_the_sample_week_changes_only_by_three_empty_keys() -> None:
    """Issue #12: chat-only output is unchanged but for ``tickets``, ``waits`` and ``periods``,
    always present and empty here; without them the JSON is byte for byte what it was."""
    r = run(["audit", str(SAMPLE), "--until", "2026-11-17T00:10:00Z", "--format", "json", "-q"])
    d = orjson.loads(r.stdout)
    assert list(d) == ["sessions", "assessments", "tickets", "waits", "requests", "periods", "stats"]
    assert (d.pop("tickets"), d.pop("waits"), d.pop("requests"), d.pop("periods")) == ([], [], [], [])  # (+ requests: issue #14)
    assert "models" not in d["stats"]
    assert hashlib.sha256(orjson.dumps(d, option=orjson.OPT_INDENT_2) + b"\n").hexdigest() == OLD_WEEK_SHA256


def test_a_mixed_file_gives_every_model_its_records(mixed: Path) -> None:
    """A.3 routing through the CLI: sessions and assessments of TikTok Shop, tickets of Douyin,
    waits of AliExpress, periods of both, each under its platform's current policy; the other
    models' counters under stats.models; read = valid + duplicate + invalid."""
    d = audit_json(str(mixed), "--until", UNTIL)
    assert d["sessions"] and d["assessments"] and d["tickets"] and d["waits"] and d["periods"]
    assert {(s["policy_id"], s["policy_version"]) for s in d["sessions"]} == {("tiktok_shop", "2023-11")}
    assert {(t["policy_id"], t["policy_version"]) for t in d["tickets"]} == {("douyin_ticket", "2024-09")}
    assert {(w["policy_id"], w["policy_version"]) for w in d["waits"]} == {("aliexpress", "seed004")}
    assert {p["policy_id"] for p in d["periods"]} == {"douyin_ticket", "aliexpress"}
    s = d["stats"]
    assert s["read"] == s["valid"] + s["duplicate"] + s["invalid"] == len(mixed.read_bytes().splitlines())
    assert s["models"]["service_tickets"]["counters"]["valid"] == sum(b'"ticket.event/v1"' in x for x in mixed.read_bytes().splitlines())
    # sorted deterministically: the lists come out in their keys' order
    assert d["tickets"] == sorted(d["tickets"], key=lambda t: (t["shop_id"], t["ticket_id"]))
    assert [(p["policy_id"], p["shop_id"], p["period"], p["start"]) for p in d["periods"]] == sorted(
        (p["policy_id"], p["shop_id"], p["period"], p["start"]) for p in d["periods"])


def test_the_cli_equals_run_audit_and_is_byte_stable(mixed: Path) -> None:
    """The CLI's JSON is run_audit's report under policies_for(()); two runs are byte-identical."""
    a = run(["audit", str(mixed), "--until", UNTIL, "--format", "json", "-q"]).stdout
    b = run(["audit", str(mixed), "--until", UNTIL, "--format", "json", "-q"]).stdout
    assert a == b
    policy, *others = policies_for(())
    report = run_audit(mixed.read_bytes().splitlines(), policy, until=parse_time(UNTIL), policies=others)
    assert orjson.loads(a) == orjson.loads(orjson.dumps(report.to_dict()))


def test_repeated_policy_one_per_model(mixed: Path) -> None:
    """--policy is repeatable, one per model: the named ones replace their model's default."""
    d = audit_json(str(mixed), "--until", UNTIL, "--policy", "douyin_ticket@seed001", "--policy", "tiktok_shop@2025-sea")
    assert {t["policy_version"] for t in d["tickets"]} == {"seed001"}
    assert {s["policy_version"] for s in d["sessions"]} == {"2025-sea"}
    assert {w["policy_version"] for w in d["waits"]} == {"seed004"}  # not named: its default
    assert (d["stats"]["policy_id"], d["stats"]["policy_version"]) == ("tiktok_shop", "2025-sea")
    assert d["stats"]["models"]["service_tickets"]["policy_version"] == "seed001"


def test_two_policies_for_one_model_is_a_one_line_usage_error(mixed: Path) -> None:
    r = run(["audit", str(mixed), "--policy", "douyin_ticket@seed001", "--policy", "douyin_ticket@2024-09"])
    line = one_error_line(r, code=2, prefix="chatsla audit: error:", names="service_tickets")
    assert "douyin_ticket@seed001" in line and "douyin_ticket@2024-09" in line


@pytest.mark.parametrize(("name", "field", "value"), [
    ("douyin_ticket@2024-09", "ticket_sla", {"normal": 24, "urgent": "2h"}),
    ("aliexpress@seed004", "wait_measured_from", "sometime"),
])
def test_a_bad_ticket_or_wait_policy_file_is_one_line_naming_the_field(tmp_path: Path, mixed: Path, name: str,
                                                                       field: str, value: object) -> None:
    d = json.loads((REPO / "chatsla" / "policies" / f"{name}.json").read_text())
    d[field] = value
    path = tmp_path / "bad.json"
    path.write_bytes(orjson.dumps(d))
    one_error_line(run(["audit", str(mixed), "--policy", str(path)]), code=2, prefix="chatsla audit: error:",
                   names=field)


def test_a_bare_id_names_the_version_marked_current() -> None:
    """A bare id resolves to the bundled version whose file says "current": true, not the last
    in sort order ("seed001" sorts after "2024-09"); every bundled id has exactly one."""
    assert current_ref("douyin_ticket") == "douyin_ticket@2024-09"
    assert current_ref("tiktok_shop") == "tiktok_shop@2023-11"
    assert current_ref("aliexpress") == "aliexpress@seed004"
    assert load_policy("douyin_ticket").ref == "douyin_ticket@2024-09"
    assert [p.model for p in default_policies()] == ["chat_sessions", "service_tickets", "im_waits", "aftersale"]
    for path in (REPO / "chatsla" / "policies").glob("*.json"):
        assert json.loads(path.read_text()).get("current", False) in (True, False), path


def test_policies_lists_each_with_its_model_and_which_is_current() -> None:
    """Issue #12: `chatsla policies` lists every policy with its model, and says which version a
    run uses without --policy (RULES A.3)."""
    r = run(["policies"])
    assert r.returncode == 0, r.stderr.decode()
    rows = {line.split("\t")[0]: line.split("\t")[1:3] for line in r.stdout.decode().splitlines()}
    assert rows["douyin_ticket@2024-09"] == ["service_tickets", "current"]
    assert rows["douyin_ticket@seed001"] == ["service_tickets", "-"]
    assert rows["aliexpress@seed004"] == ["im_waits", "current"]
    assert rows["tiktok_shop@2023-11"] == ["chat_sessions", "current"]
    listed = json.loads(run(["policies", "--format", "json"]).stdout)
    assert {p["ref"] for p in listed if p["current"]} == {"douyin_ticket@2024-09", "aliexpress@seed004",
                                                          "tiktok_shop@2023-11", "tiktok_aftersale@2026-01"}


def test_table_shows_tickets_and_waits(mixed: Path) -> None:
    r = run(["audit", str(mixed), "--until", UNTIL, "-q"])
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode()
    assert "Weekly 24 h reply rate (tiktok_shop@2023-11)" in out
    assert "Service tickets handled in time, by period (douyin_ticket@2024-09)" in out
    assert "Buyer waits, by period (aliexpress@seed004)" in out
    assert "service_tickets (douyin_ticket@2024-09): " in out and "im_waits (aliexpress@seed004): " in out


def test_table_of_tickets_alone_has_no_chat_table(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    p.write_bytes(b"\n".join(x for x in mixed_lines(7) if b'"ticket.event/v1"' in x) + b"\n")
    out = run(["audit", str(p), "--until", UNTIL, "-q"]).stdout.decode()
    assert "Service tickets handled in time" in out and "Weekly 24 h reply rate" not in out


@pytest.mark.parametrize("records", ["tickets", "waits", "periods"])
def test_csv_records_of_the_new_kinds(mixed: Path, records: str) -> None:
    """--records tickets|waits|periods: one row per record of the JSON, same values."""
    d = audit_json(str(mixed), "--until", UNTIL)
    r = run(["audit", str(mixed), "--until", UNTIL, "--format", "csv", "--records", records, "-q"])
    assert r.returncode == 0, r.stderr.decode()
    rows = list(csv.DictReader(io.StringIO(r.stdout.decode())))
    assert len(rows) == len(d[records]) > 0
    for row, rec in zip(rows, d[records]):
        assert set(rec) <= set(row)
        for k, v in rec.items():
            want = "" if v is None else ("true" if v is True else "false" if v is False else
                                         f"{v:.4f}" if isinstance(v, float) else str(v))
            assert row[k] == want, (k, row[k], v)


def test_the_worked_examples_of_docs_models_md_are_what_the_audit_prints() -> None:
    """Issue #12 ("one example each"): the input of docs/models.md gives exactly the values that
    page shows for each model's records (every key shown, with its value)."""
    import re

    text = (REPO / "docs" / "models.md").read_text()
    jsonl = re.search(r"```jsonl\n(.*?)```", text, re.S).group(1)
    d = run_audit([x.encode() for x in jsonl.splitlines()], *policies_for(())[:1],
                  until=parse_time("2026-11-10T00:00:00Z"), policies=policies_for(())[1:]).to_dict()
    assert d["stats"]["late"] == 0 and d["stats"]["invalid"] == 0
    records = d["sessions"] + d["tickets"] + d["waits"] + d["requests"] + d["periods"]
    shown = []
    dec = json.JSONDecoder()
    for block in re.findall(r"```json\n(.*?)```", text, re.S):
        i = 0
        while i < len(block):
            if block[i].isspace():
                i += 1
                continue
            obj, i = dec.raw_decode(block, i)
            shown.append(obj)
    assert len(shown) == 7  # (two of them the after-sales example, issue #14)
    for obj in shown:
        assert any(all(r.get(k, object()) == v for k, v in obj.items()) for r in records), obj
