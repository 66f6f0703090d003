"""Platform rules as versioned data (RULES R7).

Every number of R2-R5 lives in a policy file (``chatsla/policies/<id>@<version>.json``), never in
code, so a marketplace's rule change is a new file and an audit can be rerun under any version.
Every output record names ``policy_id`` and ``policy_version``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from importlib import resources
from pathlib import Path

import orjson

from chatsla.core.timefmt import parse_duration
from chatsla.core.errors import UsageError

DEFAULT_POLICY = "tiktok_shop@2023-11"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class PolicyError(UsageError, ValueError):
    """A policy that cannot be found, read or used; the message is one line naming the policy and,
    for a bad value, the field. A usage error (exit 2): the policy is part of the command line."""


# Durations longer than this are surely a typo (and beyond it the week and deadline arithmetic
# would leave the range of Python's datetime).
_MAX_DURATION_DAYS = 366


def _json(value: object) -> str:
    return orjson.dumps(value, default=str).decode()


def _duration(d: dict, field: str, origin: str) -> int:
    """A policy duration (``"72h"``) in µs, or a PolicyError naming the field and what is wrong."""
    value = d[field]
    if type(value) is not str:
        raise PolicyError(f"{origin}: {field} must be a duration string such as \"72h\" or \"10min\", "
                          f"not {_json(value)}")
    try:
        us = parse_duration(value)
    except (ValueError, OverflowError):  # "1e999h" is infinite
        us = -1
    if not 0 < us <= _MAX_DURATION_DAYS * 86_400_000_000:
        raise PolicyError(f"{origin}: {field} must be a positive duration of at most {_MAX_DURATION_DAYS} days "
                          f"such as \"72h\" or \"10min\", not {_json(value)}")
    return us


def _count(d: dict, field: str, origin: str) -> int:
    """A whole number >= 0 (JSON 5, not 5.5, "5" or true), or a PolicyError naming the field."""
    value = d[field]
    if type(value) is not int or value < 0:
        raise PolicyError(f"{origin}: {field} must be a whole number >= 0, not {_json(value)}")
    return value


def _share(d: dict, field: str, origin: str) -> Fraction:
    """A rate threshold from 0 to 1 (``"0.90"`` or 0.9), exact, or a PolicyError naming the field."""
    value = d[field]
    share: Fraction | None = None
    if type(value) in (str, int, float):
        try:
            share = Fraction(str(value).strip())  # str: 0.9 is 9/10 exactly, not the nearest double
        except (ValueError, ZeroDivisionError):
            pass
    if share is None or not 0 <= share <= 1:
        raise PolicyError(f"{origin}: {field} must be a number from 0 to 1 such as \"0.90\", not {_json(value)}")
    return share


class _Versioned:
    """What every policy is named by (RULES R7): ``id@version``, on every output record."""

    __slots__ = ()
    id: str
    version: str

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"


@dataclass(frozen=True, slots=True)
class Policy(_Versioned):
    id: str
    version: str
    platform: str
    seller_timeout: int  # µs, R2.4 seller_timeout (72 h)
    buyer_timeout: int  # µs, R2.4 buyer_timeout (6 h)
    auto_reply_timeout: int  # µs, R2.4 auto_reply_resolved (10 min)
    reply_window: int  # µs, R3 (24 h)
    period_days: int  # R5.1 (7 calendar days)
    week_starts_on: int  # R5.1, 0 = Monday
    min_buyer_messages: int  # R5.4 (5)
    warning_below: Fraction  # R5.5 (0.90)
    violation_below: Fraction  # R5.5 (0.85)
    violation_points: int  # R5.5 (1)
    source: str = ""


    @property
    def model(self) -> str:
        """What the policy computes (RULES A.3): always ``chat_sessions`` for this class."""
        return CHAT_SESSIONS

    @classmethod
    def from_dict(cls, d: dict, origin: str = "policy") -> "Policy":
        if d.get("model", CHAT_SESSIONS) != CHAT_SESSIONS:
            raise PolicyError(f"{origin}: model: expected {CHAT_SESSIONS!r} for a chat policy, got {_json(d.get('model'))}")
        try:
            week_start = str(d.get("week_starts_on", "monday")).lower()
            if week_start not in WEEKDAYS:
                raise ValueError(f"week_starts_on must be a weekday name, not {week_start!r}")
            policy = cls(
                id=str(d["id"]),
                version=str(d["version"]),
                platform=str(d.get("platform", d["id"])),
                seller_timeout=_duration(d, "seller_timeout", origin),
                buyer_timeout=_duration(d, "buyer_timeout", origin),
                auto_reply_timeout=_duration(d, "auto_reply_timeout", origin),
                reply_window=_duration(d, "reply_window", origin),
                period_days=_count({"period_days": 7, **d}, "period_days", origin),
                week_starts_on=WEEKDAYS.index(week_start),
                min_buyer_messages=_count(d, "min_buyer_messages", origin),
                warning_below=_share(d, "warning_below", origin),
                violation_below=_share(d, "violation_below", origin),
                violation_points=_count(d, "violation_points", origin),
                source=str(d.get("source", "")),
            )
        except PolicyError:
            raise
        except KeyError as e:
            raise PolicyError(f"{origin}: missing key {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:
            raise PolicyError(f"{origin}: {e}") from None
        if policy.period_days != 7:
            raise PolicyError(f"{origin}: only weekly periods (period_days 7) are supported")
        if not policy.violation_below <= policy.warning_below:
            raise PolicyError(f"{origin}: violation_below must not exceed warning_below")
        return policy


# ------------------------------------------------------------------ models (RULES A.3)
CHAT_SESSIONS, SERVICE_TICKETS, IM_WAITS, AFTERSALE = "chat_sessions", "service_tickets", "im_waits", "aftersale"
MODELS = (CHAT_SESSIONS, SERVICE_TICKETS, IM_WAITS, AFTERSALE)  # the models chatsla computes today
PERIODS = ("day", "week")  # the periods R9.6 / R10.5 report ("month" is R11's, not built)
HANDLED_RESULTS = ("resolved", "unresolved", "returned")
_HHMM = __import__("re").compile(r"([01][0-9]|2[0-3]):([0-5][0-9])|24:00")


def _bad(origin: str, field: str, expected: str, value: object) -> PolicyError:
    """The one-line message of a wrong policy field: ``<policy>: <field>: expected X, got Y``."""
    return PolicyError(f"{origin}: {field}: expected {expected}, got {_json(value)}")


def _req(d: dict, key: str, origin: str, prefix: str = "") -> object:
    if key not in d:
        raise PolicyError(f"{origin}: {prefix}{key}: missing")
    return d[key]


def _dur(value: object, field: str, origin: str) -> int:
    """A duration string such as ``"24h"`` (positive, at most a year) in µs."""
    us = -1
    if type(value) is str:
        try:
            us = parse_duration(value)
        except (ValueError, OverflowError):
            us = -1
    if not 0 < us <= _MAX_DURATION_DAYS * 86_400_000_000:
        raise _bad(origin, field, f'a positive duration of at most {_MAX_DURATION_DAYS} days such as "24h"', value)
    return us


def _bool(value: object, field: str, origin: str) -> bool:
    if type(value) is not bool:
        raise _bad(origin, field, "true or false", value)
    return value


def _common(d: dict, origin: str) -> dict:
    """The fields every non-chat policy has (RULES "Fields every new policy needs")."""
    for key in ("id", "version"):
        if type(d.get(key)) is not str or not d.get(key):
            raise _bad(origin, key, "a non-empty string", d.get(key))
    tz = d.get("default_timezone")
    if tz is not None:
        from chatsla.core.calendar import IANA_ZONES  # calendar imports sessions, not policy: no cycle

        if type(tz) is not str or tz not in IANA_ZONES:
            raise _bad(origin, "default_timezone", "an IANA time zone name such as \"Asia/Shanghai\"", tz)
    periods = d.get("periods", list(PERIODS))
    if type(periods) is not list or not periods or any(p not in PERIODS for p in periods) or len(set(periods)) != len(periods):
        raise _bad(origin, "periods", 'a list of distinct "day", "week"', periods)
    week_start = d.get("week_starts_on", "monday")
    if week_start not in WEEKDAYS:
        raise _bad(origin, "week_starts_on", "a weekday name such as \"monday\"", week_start)
    if d.get("assessment") is not None:
        raise _bad(origin, "assessment", f"null (no assessment exists under model {d.get('model')})", d.get("assessment"))
    if _bool(d.get("vacation_excludes", False), "vacation_excludes", origin):
        raise _bad(origin, "vacation_excludes", f"false (vacation mode does not apply to {d.get('model')}, R9.4.9 / R10.5.6)", True)
    return {"id": d["id"], "version": d["version"], "platform": str(d.get("platform", d["id"])),
            "source": str(d.get("source", "")), "default_timezone": tz, "periods": tuple(periods),
            "week_starts_on": WEEKDAYS.index(week_start)}


def _hhmm(value: object, field: str, origin: str) -> int:
    if type(value) is not str or _HHMM.fullmatch(value) is None:
        raise _bad(origin, field, "HH:MM", value)
    h, m = value.split(":")
    return int(h) * 60 + int(m)


def _service_window(sw: dict, field: str, origin: str) -> tuple[int, int, str, tuple[int, ...]]:
    """A ``service_window`` object ``{start, end, timezone, days}`` (R9.2.1; "Policy fields beyond
    ..."): (start min, end min, ``"shop"`` or an IANA zone, sorted weekdays with 0 = Monday).
    ``timezone`` defaults to ``"shop"`` and ``days`` to every day. The ticket policy's window and
    the working-day form of an aftersale ``review_window`` (R11.6.1) are read here, so both take
    the same shape and give the same one-line errors, each naming the field (``field.start``)."""
    start = _hhmm(_req(sw, "start", origin, f"{field}."), f"{field}.start", origin)
    end = _hhmm(_req(sw, "end", origin, f"{field}."), f"{field}.end", origin)
    if not start < end:
        raise _bad(origin, f"{field}.end", f"a time after start {sw['start']}", sw["end"])
    wtz = sw.get("timezone", "shop")
    if wtz != "shop":
        from chatsla.core.calendar import IANA_ZONES

        if type(wtz) is not str or wtz not in IANA_ZONES:
            raise _bad(origin, f"{field}.timezone", '"shop" or an IANA time zone name', wtz)
    days = sw.get("days", list(WEEKDAYS))
    if type(days) is not list or not days or any(x not in WEEKDAYS for x in days) or len(set(days)) != len(days):
        raise _bad(origin, f"{field}.days", "a non-empty list of distinct weekday names", days)
    return start, end, wtz, tuple(sorted(WEEKDAYS.index(x) for x in days))


@dataclass(frozen=True, slots=True)
class TicketPolicy(_Versioned):
    """A ``service_tickets`` policy (RULES R9, R9.9; "Policy fields beyond ..."). Durations in µs."""

    id: str
    version: str
    platform: str
    source: str
    default_timezone: str | None  # the zone of a shop never told its zone (N9); None: the engine's
    periods: tuple[str, ...]
    week_starts_on: int  # 0 = Monday
    window_start: int  # minutes after local midnight (R9.2.1, 09:00 = 540)
    window_end: int  # minutes, up to 1440 (24:00)
    window_timezone: str  # "shop" or an IANA zone
    window_days: tuple[int, ...]  # service weekdays, 0 = Monday
    ticket_sla: dict = field(hash=False)  # priority -> µs of service time (R9.3.4)
    agreed_sla_min: int = 0  # µs (R9.9)
    category_sla: dict = field(default_factory=dict, hash=False)  # category code -> µs (R9.3.3)
    handled_results: frozenset = frozenset(HANDLED_RESULTS)  # R9.4.1


    @property
    def model(self) -> str:
        return SERVICE_TICKETS

    @classmethod
    def from_dict(cls, d: dict, origin: str = "policy") -> "TicketPolicy":
        common = _common(d, origin)
        sw = _req(d, "service_window", origin)
        if type(sw) is not dict:
            raise _bad(origin, "service_window", "an object {start, end, timezone, days}", sw)
        start, end, wtz, days = _service_window(sw, "service_window", origin)
        sla = _req(d, "ticket_sla", origin)
        if type(sla) is not dict or set(sla) != {"normal", "urgent"}:
            raise _bad(origin, "ticket_sla", 'an object {"normal": duration, "urgent": duration}', sla)
        ticket_sla = {k: _dur(v, f"ticket_sla.{k}", origin) for k, v in sla.items()}
        cats = d.get("category_sla", {})
        if type(cats) is not dict:
            raise _bad(origin, "category_sla", "an object {category code: duration}", cats)
        category_sla = {k: _dur(v, f"category_sla.{k}", origin) for k, v in cats.items()}
        results = d.get("handled_results", list(HANDLED_RESULTS))
        if type(results) is not list or not results or any(r not in HANDLED_RESULTS for r in results):
            raise _bad(origin, "handled_results", 'a non-empty list of "resolved", "unresolved", "returned"', results)
        return cls(**common, window_start=start, window_end=end, window_timezone=wtz,
                   window_days=days, ticket_sla=ticket_sla,
                   agreed_sla_min=_dur(_req(d, "agreed_sla_min", origin), "agreed_sla_min", origin),
                   category_sla=category_sla, handled_results=frozenset(results))


MEASURES = ("last_buyer_message", "first_unanswered")


@dataclass(frozen=True, slots=True)
class WaitPolicy(_Versioned):
    """An ``im_waits`` policy (RULES R10, R10.6; "Policy fields beyond ..."). Durations in µs."""

    id: str
    version: str
    platform: str
    source: str
    default_timezone: str | None
    periods: tuple[str, ...]
    week_starts_on: int
    wait_measured_from: str = "last_buyer_message"  # R10.3.3
    auto_reply_ends_wait: bool = False  # R10.2.4 (N20)
    auto_reply_period: int = 86_400_000_000  # R10.4.1, µs
    percentiles: tuple = (50, 90, 99)  # R10.5.2-3: ints, or Fractions when not whole


    @property
    def model(self) -> str:
        return IM_WAITS

    @classmethod
    def from_dict(cls, d: dict, origin: str = "policy") -> "WaitPolicy":
        common = _common(d, origin)
        measure = d.get("wait_measured_from", "last_buyer_message")
        if measure not in MEASURES:
            raise _bad(origin, "wait_measured_from", '"last_buyer_message" or "first_unanswered"', measure)
        ps = _req(d, "percentiles", origin)
        out = []
        if type(ps) is not list or not ps:
            raise _bad(origin, "percentiles", "a non-empty list of numbers in (0, 100]", ps)
        for i, p in enumerate(ps):
            if type(p) not in (int, float) or not 0 < p <= 100:
                raise _bad(origin, f"percentiles[{i}]", "a number in (0, 100]", p)
            f = Fraction(str(p))
            out.append(int(f) if f.denominator == 1 else f)
        if len(set(out)) != len(out):
            raise _bad(origin, "percentiles", "distinct numbers", ps)
        return cls(**common, wait_measured_from=measure,
                   auto_reply_ends_wait=_bool(d.get("auto_reply_ends_wait", False), "auto_reply_ends_wait", origin),
                   auto_reply_period=_dur(_req(d, "auto_reply_period", origin), "auto_reply_period", origin),
                   percentiles=tuple(out))


_REQUEST_TYPES = ("cancel", "refund_only", "return_refund", "exchange")  # R11.1


@dataclass(frozen=True, slots=True)
class WorkingWindow:
    """The working-day form of one ``review_window`` entry (R11.6.1, N44): the request is due once
    ``duration`` µs of service time have run on the service clock of ``service_window`` (R9.2:
    due(requested_at, duration), with its carry-over). Thailand's and Vietnam's "1 working day"
    is ``{"service_window": {"start": "00:00", "end": "24:00", "timezone": "shop", "days":
    ["monday", ..., "friday"]}, "duration": "24h"}``: a Friday 15:00 request is due Monday 15:00,
    a Saturday one Tuesday 00:00 (docs/rules.md, "Readings chatsla chose for R11")."""

    duration: int  # µs of service time
    window_start: int  # minutes after local midnight
    window_end: int  # minutes, up to 1440 (24:00)
    window_timezone: str  # "shop" (the shop's zone at the request, as R9.2.2) or an IANA zone
    window_days: tuple[int, ...]  # 0 = Monday

    def to_json(self) -> dict:
        """As ``chatsla policies --format json`` shows it: the policy file's shape, the duration in
        seconds (``duration_s``, as every other duration there)."""
        def hhmm(m: int) -> str:
            return f"{m // 60:02d}:{m % 60:02d}"

        return {"service_window": {"start": hhmm(self.window_start), "end": hhmm(self.window_end),
                                   "timezone": self.window_timezone, "days": [WEEKDAYS[d] for d in self.window_days]},
                "duration_s": self.duration / 1_000_000 if self.duration % 1_000_000 else self.duration // 1_000_000}


# The working-day form's due time must fall within this many calendar days of the request (a year,
# as a plain duration): beyond it the clock would walk a window at a time towards datetime's range.
_MAX_WORKING_SPAN_DAYS = _MAX_DURATION_DAYS


def _review_entry(value: object, field: str, origin: str) -> "int | WorkingWindow":
    """One ``review_window`` entry (R11.6.1): a duration string (µs), or the working-day form
    ``{"service_window": {start, end, timezone, days}, "duration": "24h"}`` (:class:`WorkingWindow`)."""
    if type(value) is not dict:
        if type(value) is not str:
            raise _bad(origin, field, 'a duration such as "48h" or an object {"service_window": {start, end, '
                                      'timezone, days}, "duration": "24h"}', value)
        return _dur(value, field, origin)
    if set(value) != {"service_window", "duration"}:
        raise _bad(origin, field, 'an object with exactly the keys "service_window" and "duration"', value)
    sw = value["service_window"]
    if type(sw) is not dict:
        raise _bad(origin, f"{field}.service_window", "an object {start, end, timezone, days}", sw)
    start, end, wtz, days = _service_window(sw, f"{field}.service_window", origin)
    duration = _dur(value["duration"], f"{field}.duration", origin)
    per_week = (end - start) * 60_000_000 * len(days)  # µs of service time in a week (DST aside)
    if duration * 7 > per_week * _MAX_WORKING_SPAN_DAYS:
        raise _bad(origin, f"{field}.duration", f"at most the service time its service_window gives in {_MAX_WORKING_SPAN_DAYS} days",
                   value["duration"])
    return WorkingWindow(duration, start, end, wtz, days)


@dataclass(frozen=True, slots=True)
class AftersalePolicy(_Versioned):
    """An ``aftersale`` policy (RULES R11, R11.7; "Policy fields beyond ..."). Durations in µs,
    ``near_threshold_band`` a ``Decimal`` and ``review_rate_below`` a ``Fraction`` (exact).

    ``rule_sets``: rule sets given to a run beyond the bundled ones (``chatsla rules diff`` and
    tests; not a policy-file field): an assignment of their ``id`` at any version, and
    ``default_rules`` of their id, resolve to them (docs/rules.md, "rules diff")."""

    id: str
    version: str
    platform: str
    source: str
    default_timezone: str | None
    periods: tuple[str, ...]
    week_starts_on: int
    platform_return_window: dict = field(hash=False)  # category code -> µs (R11.3.2)
    default_rules: str | None = None  # "<id>@<version>" (R11.2)
    near_threshold_band: object = None  # Decimal (R11.4.3)
    repeat_window: int = 30 * 86_400_000_000
    repeat_buyer_min: int = 3
    repeat_sku_min: int = 2
    # request_type -> µs, or a WorkingWindow (the working-day form: service time on a clock, R11.6.1)
    review_window: dict = field(default_factory=dict, hash=False)
    review_rate_below: Fraction = Fraction(9, 10)
    review_period: str = "month"
    rule_sets: tuple = field(default=(), hash=False)


    @property
    def model(self) -> str:
        return AFTERSALE

    @classmethod
    def from_dict(cls, d: dict, origin: str = "policy") -> "AftersalePolicy":
        from decimal import Decimal

        from chatsla.core.rulesets import DECIMAL

        common = _common(d, origin)
        prw = d.get("platform_return_window", {})
        if type(prw) is not dict:
            raise _bad(origin, "platform_return_window", "an object {category code: duration}", prw)
        windows = {k: _dur(v, f"platform_return_window.{k}", origin) for k, v in prw.items()}
        dr = d.get("default_rules")
        if dr is not None and (type(dr) is not str or dr.count("@") != 1 or dr.startswith("@") or dr.endswith("@")):
            raise _bad(origin, "default_rules", 'null or "<id>@<version>"', dr)
        band = _req(d, "near_threshold_band", origin)
        if type(band) is not str or not DECIMAL.fullmatch(band) or Decimal(band) > 1:
            raise _bad(origin, "near_threshold_band", 'a decimal string from 0 to 1 such as "0.10"', band)
        rw = _req(d, "review_window", origin)
        if type(rw) is not dict or set(rw) != set(_REQUEST_TYPES):
            raise _bad(origin, "review_window", "an object with a duration or a working-day form for each of "
                       + ", ".join(_REQUEST_TYPES), rw)
        review = {k: _review_entry(rw[k], f"review_window.{k}", origin) for k in _REQUEST_TYPES}
        mins = {}
        for key in ("repeat_buyer_min", "repeat_sku_min"):
            v = _req(d, key, origin)
            if type(v) is not int or v < 1:
                raise _bad(origin, key, "a whole number >= 1", v)
            mins[key] = v
        if d.get("review_period", "month") != "month":
            raise _bad(origin, "review_period", '"month"', d.get("review_period"))
        return cls(**common, platform_return_window=windows, default_rules=dr, near_threshold_band=Decimal(band),
                   repeat_window=_dur(_req(d, "repeat_window", origin), "repeat_window", origin),
                   review_window=review, review_rate_below=_share(d, "review_rate_below", origin) if "review_rate_below" in d
                   else Fraction(9, 10), review_period="month", **mins)


AnyPolicy = Policy | TicketPolicy | WaitPolicy | AftersalePolicy


def policy_from_dict(d: dict, origin: str = "policy") -> AnyPolicy:
    """The policy a JSON object describes, by its ``model`` (absent: ``chat_sessions``, RULES A.3)."""
    model = d.get("model", CHAT_SESSIONS)
    if model == CHAT_SESSIONS:
        return Policy.from_dict(d, origin)
    if model == SERVICE_TICKETS:
        return TicketPolicy.from_dict(d, origin)
    if model == IM_WAITS:
        return WaitPolicy.from_dict(d, origin)
    if model == AFTERSALE:
        return AftersalePolicy.from_dict(d, origin)
    raise _bad(origin, "model", "one of " + ", ".join(f'"{m}"' for m in MODELS), model)


def available() -> list[str]:
    """References of the bundled policies, e.g. ``tiktok_shop@2023-11``."""
    folder = resources.files("chatsla") / "policies"
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


def _bundled(ref: str) -> dict:
    return orjson.loads((resources.files("chatsla") / "policies" / f"{ref}.json").read_bytes())


def current_ref(policy_id: str) -> str | None:
    """The bundled version of ``policy_id`` that a bare id names: the one whose file says
    ``"current": true`` (docs/rules.md, "Which policy version is current"). Versions are labels
    (``2023-11``, ``seed001``, ``2025-sea``), not dates: sorting them says nothing about which
    one is in force, so the choice is written in the data. None for an unknown id; a
    PolicyError unless exactly one version is marked."""
    versions = [r for r in available() if r.split("@", 1)[0] == policy_id]
    if not versions:
        return None
    marked = [r for r in versions if _bundled(r).get("current") is True]
    if len(marked) != 1:
        raise PolicyError(f"bundled policy {policy_id!r}: exactly one version must be marked \"current\": true, "
                          f"found {len(marked)} of {', '.join(versions)}")
    return marked[0]


def default_policies() -> list[AnyPolicy]:
    """Each bundled policy id's current version, one per model, in the order the models are
    hosted (chat sessions first: it counts shop events, RULES A.3): what ``chatsla audit``
    applies without ``--policy``. A PolicyError if two ids claim one model."""
    ids = sorted({r.split("@", 1)[0] for r in available()})
    by_model: dict[str, AnyPolicy] = {}
    for pid in ids:
        p = load_policy(current_ref(pid))  # type: ignore[arg-type]
        if p.model in by_model:
            raise PolicyError(f"bundled policies {by_model[p.model].id!r} and {p.id!r} are both current for model "
                              f"{p.model}: a run hosts one model of each kind")
        by_model[p.model] = p
    return [by_model[m] for m in MODELS if m in by_model]


def policies_for(specs: "list[str] | tuple[str, ...]") -> list[AnyPolicy]:
    """The policies of a run given ``--policy`` ``specs`` (repeatable, one per model): each
    replaces its model's default (:func:`default_policies`); the others keep theirs. Two for
    the same model is a PolicyError naming both."""
    given: dict[str, tuple[str, AnyPolicy]] = {}
    for spec in specs:
        p = load_policy(spec)
        if p.model in given:
            raise PolicyError(f"--policy {given[p.model][0]} and --policy {spec} are both for model {p.model}: "
                              f"give one policy per model")
        given[p.model] = (spec, p)
    chosen = {p.model: p for p in default_policies()}
    chosen.update({m: p for m, (_, p) in given.items()})
    return [chosen[m] for m in MODELS if m in chosen]


def load_policy(spec: str = DEFAULT_POLICY) -> AnyPolicy:
    """``id@version`` of a bundled policy, a bare ``id`` (its current version, :func:`current_ref`),
    or a JSON file path.
    The result's class follows the file's ``model`` (RULES A.3); every one has ``.id``,
    ``.version``, ``.ref``, ``.model`` and ``.platform``."""
    if spec.endswith(".json") or "/" in spec:
        path = Path(spec)
        try:
            data = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            raise PolicyError(f"policy file not found: {spec}") from None
        except OSError as e:  # a directory, no permission, an I/O error
            raise PolicyError(f"cannot read policy file {spec}: {e.strerror or e}") from None
        except orjson.JSONDecodeError as e:
            raise PolicyError(f"policy file {spec} is not valid JSON: {e}") from None
        if type(data) is not dict:
            raise PolicyError(f"policy file {spec} must hold a JSON object")
        return policy_from_dict(data, origin=spec)
    refs = available()
    if "@" not in spec:
        versions = [r for r in refs if r.split("@", 1)[0] == spec]
        if not versions:
            if Path(spec).exists():  # a file (or directory) named without a slash or .json
                return load_policy(f"./{spec}")
            raise PolicyError(f"unknown policy {spec!r}; available: {', '.join(refs)}")
        spec = current_ref(spec)  # type: ignore[assignment]
    if spec not in refs:
        raise PolicyError(f"unknown policy {spec!r}; available: {', '.join(refs)}")
    return policy_from_dict(_bundled(spec), origin=spec)
