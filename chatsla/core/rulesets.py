"""After-sales rule sets (RULES R11.2): a seller's versioned auto-approval rules, as data.

A rule set is a document of its own, ``<id>@<version>.json``: the seller's configuration, not a
platform policy, so it lives beside the policies in ``chatsla/aftersale_rules/`` and has its own
schema (``schemas/aftersale.rules.schema.json``). Loading one checks every field and raises a
:class:`RuleSetError` whose message is one line naming the file and the field
(``shop-S9-aftersale@2026-01-22: rules[2].when.amount_max: expected a decimal string such as
"50.00", got 50``): a rule set is typed by hand, and a silent typo would approve money.

Unknown keys are errors too (``when.amount_maxx`` would otherwise match everything). Amounts are
``decimal.Decimal`` (exact, never floats: "50美元以下" must include 50.00 exactly, N32).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path

import orjson

from chatsla.core.errors import UsageError
from chatsla.core.events import AFTERSALE_REQUEST_TYPES
from chatsla.core.timefmt import parse_duration, parse_time

# A decimal amount as the wire and the rule sets write it: digits, optionally a point and up to six
# more (no sign, exponent, spaces or thousands separators: "1e2" and "1,000" are typos here).
DECIMAL = re.compile(r"(0|[1-9][0-9]{0,17})(\.[0-9]{1,6})?")
_CURRENCY = re.compile(r"[A-Z]{3}")
_MAX_WINDOW_DAYS = 366
NONE = "none"  # R11.2: ``rules: "none"`` un-assigns a shop's rule set


class RuleSetError(UsageError, ValueError):
    """A rule set that cannot be found, read or used; one line naming the file and the field."""


def _json(v: object) -> str:
    return orjson.dumps(v, default=str).decode()


def _bad(origin: str, field: str, expected: str, value: object) -> RuleSetError:
    return RuleSetError(f"{origin}: {field}: expected {expected}, got {_json(value)}")


def decimal_of(value: object) -> Decimal | None:
    """The exact value of a decimal string (``"98.00"``), or None if it is not one."""
    if type(value) is str and DECIMAL.fullmatch(value):
        return Decimal(value)
    return None


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule (R11.2). Conditions left out are None (they match anything)."""

    name: str
    action: str  # "approve" | "manual_review"
    reason: str  # for manual_review; "rule:<name>" by default
    request_types: frozenset | None = None
    reasons: frozenset | None = None
    categories: frozenset | None = None
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    credit_min: int | None = None
    credit_below: int | None = None
    shipped: bool | None = None
    return_cost_exceeds_amount: bool | None = None
    per_buyer_count: int | None = None
    per_buyer_window: int | None = None  # µs
    daily_count: int | None = None
    effective_from: int | None = None  # µs, in force on [from, to)
    effective_to: int | None = None

    @property
    def window(self) -> int:
        """The buyer window this rule needs remembered (Amendment A.1), 0 without a per-buyer limit."""
        return self.per_buyer_window or 0


@dataclass(frozen=True, slots=True)
class RuleSet:
    id: str
    version: str
    currency: str
    rules: tuple[Rule, ...]

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    @classmethod
    def from_dict(cls, d: object, origin: str = "rule set") -> "RuleSet":
        if type(d) is not dict:
            raise RuleSetError(f"{origin}: must hold a JSON object")
        _unknown(d, ("id", "version", "currency", "rules", "source", "description"), origin, "")
        for key in ("id", "version"):
            v = d.get(key)
            if type(v) is not str or not v or "@" in v or "/" in v:
                raise _bad(origin, key, "a non-empty string without '@' or '/'", v)
        cur = d.get("currency")
        if type(cur) is not str or not _CURRENCY.fullmatch(cur):
            raise _bad(origin, "currency", 'an ISO 4217 code such as "USD"', cur)
        rules = d.get("rules")
        if type(rules) is not list:
            raise _bad(origin, "rules", "a list of rules", rules)
        out: list[Rule] = []
        names: set[str] = set()
        for i, r in enumerate(rules):
            rule = _rule(r, f"rules[{i}]", origin)
            if rule.name in names:
                raise _bad(origin, f"rules[{i}].name", "a name unique in the set", rule.name)
            names.add(rule.name)
            out.append(rule)
        return cls(d["id"], d["version"], cur, tuple(out))


def check(d: object, origin: str = "rule set") -> list[str]:
    """Every error of a rule set document, one line each (``chatsla rules check``): the top-level
    fields, then the first error of each rule. Empty when :meth:`RuleSet.from_dict` would load it."""
    if type(d) is not dict:
        return [f"{origin}: must hold a JSON object"]
    errors: list[str] = []
    base = {k: v for k, v in d.items() if k != "rules"} | {"rules": []}
    try:
        RuleSet.from_dict(base, origin)
    except RuleSetError as e:
        errors.append(str(e))
    rules = d.get("rules")
    if type(rules) is not list:
        if "rules" not in d:
            errors.append(f"{origin}: rules: missing")
        elif not errors or "rules:" not in errors[-1]:
            errors.append(str(_bad(origin, "rules", "a list of rules", rules)))
        return errors
    names: set[str] = set()
    for i, r in enumerate(rules):
        try:
            rule = _rule(r, f"rules[{i}]", origin)
        except RuleSetError as e:
            errors.append(str(e))
            continue
        if rule.name in names:
            errors.append(str(_bad(origin, f"rules[{i}].name", "a name unique in the set", rule.name)))
        names.add(rule.name)
    return errors


def _unknown(d: dict, known: tuple[str, ...], origin: str, prefix: str) -> None:
    for k in d:
        if k not in known:
            raise RuleSetError(f"{origin}: {prefix}{k}: unknown key (known: {', '.join(known)})")


_RULE_KEYS = ("name", "action", "reason", "when", "per_buyer_limit", "daily_limit", "effective_from", "effective_to")
_WHEN_KEYS = ("request_types", "reasons", "categories", "amount_min", "amount_max", "credit_min", "credit_below",
              "shipped", "return_cost_exceeds_amount")


def _codes(v: object, field: str, origin: str, allowed: tuple[str, ...] | None = None) -> frozenset:
    if type(v) is not list or not v or any(type(x) is not str or not x for x in v):
        raise _bad(origin, field, "a non-empty list of codes", v)
    if allowed is not None:
        for x in v:
            if x not in allowed:
                raise _bad(origin, field, "request types among " + ", ".join(allowed), x)
    return frozenset(v)


def _credit(v: object, field: str, origin: str) -> int:
    if type(v) is not int or not 0 <= v <= 100:
        raise _bad(origin, field, "a whole number from 0 to 100", v)
    return v


def _amount(v: object, field: str, origin: str) -> Decimal:
    a = decimal_of(v)
    if a is None:
        raise _bad(origin, field, 'a decimal string such as "50.00"', v)
    return a


def _instant(v: object, field: str, origin: str) -> int:
    t = parse_time(v) if type(v) is str else None
    if t is None:
        raise _bad(origin, field, "an RFC 3339 instant with an offset", v)
    return t


def _rule(r: object, at: str, origin: str) -> Rule:
    if type(r) is not dict:
        raise _bad(origin, at, "an object", r)
    _unknown(r, _RULE_KEYS, origin, at + ".")
    name = r.get("name")
    if type(name) is not str or not name:
        raise _bad(origin, f"{at}.name", "a non-empty string", name)
    action = r.get("action")
    if action not in ("approve", "manual_review"):
        raise _bad(origin, f"{at}.action", '"approve" or "manual_review"', action)
    reason = r.get("reason", f"rule:{name}")
    if type(reason) is not str or not reason:
        raise _bad(origin, f"{at}.reason", "a non-empty string", reason)
    when = r.get("when", {})
    if type(when) is not dict:
        raise _bad(origin, f"{at}.when", "an object of conditions", when)
    _unknown(when, _WHEN_KEYS, origin, at + ".when.")
    w = f"{at}.when."
    kw: dict = {}
    if "request_types" in when:
        kw["request_types"] = _codes(when["request_types"], w + "request_types", origin, AFTERSALE_REQUEST_TYPES)
    for key in ("reasons", "categories"):
        if key in when:
            kw[key] = _codes(when[key], w + key, origin)
    for key in ("amount_min", "amount_max"):
        if key in when:
            kw[key] = _amount(when[key], w + key, origin)
    if "amount_min" in kw and "amount_max" in kw and kw["amount_min"] > kw["amount_max"]:
        raise _bad(origin, w + "amount_max", f"at least amount_min {when['amount_min']}", when["amount_max"])
    for key in ("credit_min", "credit_below"):
        if key in when:
            kw[key] = _credit(when[key], w + key, origin)
    for key in ("shipped", "return_cost_exceeds_amount"):
        if key in when:
            if type(when[key]) is not bool:
                raise _bad(origin, w + key, "true or false", when[key])
            kw[key] = when[key]
    if "per_buyer_limit" in r:
        lim = r["per_buyer_limit"]
        if type(lim) is not dict or set(lim) != {"count", "window"}:
            raise _bad(origin, f"{at}.per_buyer_limit", 'an object {"count": n, "window": "30d"}', lim)
        if type(lim["count"]) is not int or lim["count"] < 1:
            raise _bad(origin, f"{at}.per_buyer_limit.count", "a whole number >= 1", lim["count"])
        us = -1
        if type(lim["window"]) is str:
            try:
                us = parse_duration(lim["window"])
            except (ValueError, OverflowError):
                us = -1
        if not 0 < us <= _MAX_WINDOW_DAYS * 86_400_000_000:
            raise _bad(origin, f"{at}.per_buyer_limit.window", f'a positive duration of at most {_MAX_WINDOW_DAYS} days such as "30d"', lim["window"])
        kw["per_buyer_count"], kw["per_buyer_window"] = lim["count"], us
    if "daily_limit" in r:
        lim = r["daily_limit"]
        if type(lim) is not dict or set(lim) != {"count"} or type(lim["count"]) is not int or lim["count"] < 1:
            raise _bad(origin, f"{at}.daily_limit", 'an object {"count": n}, n >= 1', lim)
        kw["daily_count"] = lim["count"]
    for key in ("effective_from", "effective_to"):
        if key in r:
            kw[key] = _instant(r[key], f"{at}.{key}", origin)
    if "effective_from" in kw and "effective_to" in kw and not kw["effective_from"] < kw["effective_to"]:
        raise _bad(origin, f"{at}.effective_to", "an instant after effective_from", r["effective_to"])
    return Rule(name, action, reason, **kw)


def available() -> list[str]:
    """References of the bundled rule sets (``chatsla/aftersale_rules/*.json``)."""
    folder = resources.files("chatsla") / "aftersale_rules"
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


def load_rule_set(spec: str) -> RuleSet:
    """``id@version`` of a bundled rule set, or a JSON file path. The file's own ``id`` and
    ``version`` must match its name when the name has the ``id@version.json`` form."""
    if spec.endswith(".json") or "/" in spec:
        path, origin = Path(spec), spec
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise RuleSetError(f"rule set file not found: {spec}") from None
        except OSError as e:
            raise RuleSetError(f"cannot read rule set file {spec}: {e.strerror or e}") from None
    else:
        if spec not in available():
            raise RuleSetError(f"unknown rule set {spec!r}; bundled: {', '.join(available()) or 'none'}")
        raw = (resources.files("chatsla") / "aftersale_rules" / f"{spec}.json").read_bytes()
        path, origin = Path(f"{spec}.json"), spec
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise RuleSetError(f"{origin}: not valid JSON: {e}") from None
    rs = RuleSet.from_dict(data, origin)
    stem = path.name[: -len(".json")] if path.name.endswith(".json") else path.name
    if "@" in stem and stem != rs.ref:
        raise RuleSetError(f"{origin}: id and version say {rs.ref!r}, the file name says {stem!r}")
    return rs


def find_rule_set(ref: str) -> RuleSet | None:
    """The bundled rule set ``ref`` names, or None (a shop may be assigned one this build lacks)."""
    if ref not in available():
        return None
    return load_rule_set(ref)
