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

DEFAULT_POLICY = "tiktok_shop@2023-11"
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class PolicyError(ValueError):
    """A policy that cannot be found or read; the message is one line for the CLI."""


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
            if week_start not in _WEEKDAYS:
                raise ValueError(f"week_starts_on must be a weekday name, not {week_start!r}")
            policy = cls(
                id=str(d["id"]),
                version=str(d["version"]),
                platform=str(d.get("platform", d["id"])),
                seller_timeout=parse_duration(d["seller_timeout"]),
                buyer_timeout=parse_duration(d["buyer_timeout"]),
                auto_reply_timeout=parse_duration(d["auto_reply_timeout"]),
                reply_window=parse_duration(d["reply_window"]),
                period_days=int(d.get("period_days", 7)),
                week_starts_on=_WEEKDAYS.index(week_start),
                min_buyer_messages=int(d["min_buyer_messages"]),
                warning_below=Fraction(str(d["warning_below"])),
                violation_below=Fraction(str(d["violation_below"])),
                violation_points=int(d["violation_points"]),
                source=str(d.get("source", "")),
            )
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
        except orjson.JSONDecodeError as e:
            raise PolicyError(f"policy file {spec} is not valid JSON: {e}") from None
        if type(data) is not dict:
            raise PolicyError(f"policy file {spec} must hold a JSON object")
        return Policy.from_dict(data, origin=spec)
    refs = available()
    if "@" not in spec:
        versions = [r for r in refs if r.split("@", 1)[0] == spec]
        if not versions:
            raise PolicyError(f"unknown policy {spec!r}; available: {', '.join(refs)}")
        spec = DEFAULT_POLICY if DEFAULT_POLICY in versions else versions[-1]
    if spec not in refs:
        raise PolicyError(f"unknown policy {spec!r}; available: {', '.join(refs)}")
    raw = (resources.files("chatsla") / "policies" / f"{spec}.json").read_bytes()
    return Policy.from_dict(orjson.loads(raw), origin=spec)
