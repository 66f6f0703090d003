"""Platform rules as versioned data (RULES R7).

Every number of R2-R5 lives in a policy file (``chatsla/policies/<id>@<version>.json``), never in
code, so a marketplace's rule change is a new file and an audit can be rerun under any version.
Every output record names ``policy_id`` and ``policy_version``.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Policy:
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
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    @classmethod
    def from_dict(cls, d: dict, origin: str = "policy") -> "Policy":
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


def available() -> list[str]:
    """References of the bundled policies, e.g. ``tiktok_shop@2023-11``."""
    folder = resources.files("chatsla") / "policies"
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


def load_policy(spec: str = DEFAULT_POLICY) -> Policy:
    """``id@version`` of a bundled policy, a bare ``id`` (its newest version), or a JSON file path."""
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
        return Policy.from_dict(data, origin=spec)
    refs = available()
    if "@" not in spec:
        versions = [r for r in refs if r.split("@", 1)[0] == spec]
        if not versions:
            if Path(spec).exists():  # a file (or directory) named without a slash or .json
                return load_policy(f"./{spec}")
            raise PolicyError(f"unknown policy {spec!r}; available: {', '.join(refs)}")
        spec = DEFAULT_POLICY if DEFAULT_POLICY in versions else versions[-1]
    if spec not in refs:
        raise PolicyError(f"unknown policy {spec!r}; available: {', '.join(refs)}")
    raw = (resources.files("chatsla") / "policies" / f"{spec}.json").read_bytes()
    return Policy.from_dict(orjson.loads(raw), origin=spec)
