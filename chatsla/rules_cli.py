"""``chatsla rules``: after-sales rule sets (RULES R11.2) checked, and compared on real input.

``rules check RULESET.json`` validates a rule-set document and prints one line per error.
``rules diff OLD NEW EVENTS.jsonl --from --to`` answers "what would a stricter version have
changed last month" (R11.0): the audit's input is run twice through the aftersale model, once
with each rule set standing in for every assignment of its id (and for shops assigned none, when
the policy has no ``default_rules``), and the requests of ``[from, to)`` whose decision changes are
listed, with the approved amount per currency before and after. The whole input is run, not only
the period: per-buyer and daily limits count approvals made before ``from`` (R11.3.5).
"""

from __future__ import annotations

import dataclasses
import sys
from decimal import Decimal

import click
import orjson

from chatsla.core.errors import InputError, UsageError


@click.group()
def rules() -> None:
    """After-sales rule sets (RULES R11.2): check one, or compare two on an input."""


@rules.command()
@click.argument("ruleset", metavar="RULESET.json")
def check(ruleset: str) -> None:
    """Validate a rule-set document: "RULESET.json: ok (<id>@<version>, N rules)", or one line per
    error naming the field, and exit code 1."""
    from chatsla.core.rulesets import RuleSet, RuleSetError, check as errors_of, load_rule_set

    try:
        raw = open(ruleset, "rb").read()
    except FileNotFoundError:
        raise InputError(f"rule set file not found: {ruleset}") from None
    except OSError as e:
        raise InputError(f"cannot read rule set file {ruleset}: {e.strerror or e}") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        errors = [f"{ruleset}: not valid JSON: {e}"]
    else:
        errors = errors_of(data, ruleset)
        if not errors:
            try:
                load_rule_set(ruleset)  # (the file name must agree with id@version)
            except RuleSetError as e:
                errors = [str(e)]
    if errors:
        sys.stdout.write("".join(e + "\n" for e in errors))
        sys.stdout.flush()
        sys.exit(1)  # not click's Exit: chatsla.cli.main runs click with standalone_mode=False
    rs = RuleSet.from_dict(data, ruleset)
    sys.stdout.write(f"{ruleset}: ok ({rs.ref}, {len(rs.rules)} rules)\n")


def _load(spec: str):
    from chatsla.core.rulesets import RuleSetError, load_rule_set

    try:
        return load_rule_set(spec)
    except RuleSetError as e:
        raise UsageError(str(e)) from None


def run_under(path: str, rule_set, policy, config, until: int | None) -> list[dict]:
    """The after-sales request records of the input at ``path`` with ``rule_set`` standing in for
    its id (the aftersale model alone: chat, tickets and waits are not computed)."""
    from chatsla.audit import open_events, read_records, run_audit

    pol = dataclasses.replace(policy, rule_sets=(rule_set,))
    with open_events(path) as f:
        report = run_audit(read_records(f, path), pol, config, until)
    return report.requests


def diff_requests(old: list[dict], new: list[dict], start: int | None, end: int | None) -> dict:
    """The requests of ``[start, end)`` whose decision or reason differs, and the approved amount
    per currency of the period's requests under each version (exact decimal strings)."""
    from chatsla.core.timefmt import parse_time

    def in_period(r: dict) -> bool:
        t = parse_time(r["requested_at"])
        return (start is None or t >= start) and (end is None or t < end)

    def key(r: dict) -> tuple:
        return (r["shop_id"], r["request_id"], r["requested_at"])

    before = {key(r): r for r in old if in_period(r)}
    after = {key(r): r for r in new if in_period(r)}

    def approved(rs: dict) -> dict[str, str]:
        sums: dict[str, Decimal] = {}
        for r in rs.values():
            if r["decision"] == "approve":
                sums[r["currency"]] = sums.get(r["currency"], Decimal(0)) + Decimal(r["amount"])
        return {c: str(v) for c, v in sorted(sums.items())}

    changed = []
    for k in sorted(before.keys() | after.keys(), key=lambda k: (k[0], k[2], k[1])):
        o, n = before.get(k), after.get(k)
        if o is not None and n is not None and (o["decision"], o["decision_reason"]) == (n["decision"], n["decision_reason"]):
            continue
        r = n or o
        changed.append({"shop_id": r["shop_id"], "request_id": r["request_id"], "requested_at": r["requested_at"],
                        "request_type": r["request_type"], "amount": r["amount"], "currency": r["currency"],
                        "old": None if o is None else {"decision": o["decision"], "decision_reason": o["decision_reason"]},
                        "new": None if n is None else {"decision": n["decision"], "decision_reason": n["decision_reason"]}})
    return {"requests": len(before), "changed": changed,
            "approved_amount": {"old": approved(before), "new": approved(after)},
            "auto_approved": {"old": sum(r["decision"] == "approve" for r in before.values()),
                              "new": sum(r["decision"] == "approve" for r in after.values())}}


@rules.command()
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@click.argument("events", metavar="EVENTS.jsonl")
@click.option("--from", "start", metavar="RFC3339", help="First instant of the period (requested_at), inclusive.")
@click.option("--to", "end", metavar="RFC3339", help="End of the period, exclusive.")
@click.option("--policy", "policy_spec", default="tiktok_aftersale", show_default=True, metavar="ID@VERSION|FILE.json",
              help="The aftersale policy (platform guard, signal thresholds).")
@click.option("--until", metavar="RFC3339", help="Advance the watermark to this time at the end of input (as audit).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="table: one changed request per line, then the totals; json: one object.")
def diff(old: str, new: str, events: str, start: str | None, end: str | None, policy_spec: str, until: str | None,
         fmt: str) -> None:
    """Replay EVENTS.jsonl (the audit's input) under two versions of a rule set (bundled id@version
    or a file) and list the requests of [--from, --to) whose decision changes, with the approved
    amount per currency before and after. Exit code 0 whether or not anything changed."""
    from chatsla.cli import engine_config, parse_time_option, write_stdout
    from chatsla.core.policy import load_policy

    policy = load_policy(policy_spec)
    if policy.model != "aftersale":
        raise UsageError(f"--policy {policy_spec} is for model {policy.model}, not aftersale")
    t0, t1 = parse_time_option(start, "--from"), parse_time_option(end, "--to")
    if t0 is not None and t1 is not None and not t0 < t1:
        raise UsageError("--from must be before --to")
    a, b = _load(old), _load(new)
    config = engine_config("2m", "UTC")
    u = parse_time_option(until, "--until")
    result = {"old": a.ref, "new": b.ref, "from": start, "to": end,
              **diff_requests(run_under(events, a, policy, config, u), run_under(events, b, policy, config, u), t0, t1)}
    if fmt == "json":
        write_stdout(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
        return
    lines = [f"{a.ref} -> {b.ref}: {result['requests']} requests in the period, {len(result['changed'])} changed"]
    for c in result["changed"]:
        o = c["old"] or {"decision": "-", "decision_reason": "-"}
        n = c["new"] or {"decision": "-", "decision_reason": "-"}
        lines.append(f"{c['shop_id']}\t{c['request_id']}\t{c['requested_at']}\t{c['request_type']}\t{c['amount']} {c['currency']}\t"
                     f"{o['decision']} ({o['decision_reason']}) -> {n['decision']} ({n['decision_reason']})")
    aa = result["approved_amount"]
    for cur in sorted(aa["old"].keys() | aa["new"].keys()):
        lines.append(f"approved {cur}: {aa['old'].get(cur, '0')} -> {aa['new'].get(cur, '0')}")
    lines.append(f"auto-approved: {result['auto_approved']['old']} -> {result['auto_approved']['new']}")
    write_stdout(("\n".join(lines) + "\n").encode("utf-8"))
