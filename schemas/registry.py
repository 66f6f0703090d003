"""The JSON Schema files of this package (RULES R1 input events; output records and the audit report).

``load_schema("session")``, ``load_schema("session.schema.json")`` and, for input events, the
wire ``schema`` value (``load_schema("chat.message/v1")``) all name the same kind of file:
``schemas/<name>.schema.json``, read as package data so it works from an installed wheel too.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

SUFFIX = ".schema.json"
SCHEMA_NAMES = ("chat.message.v1", "shop.event.v1", "ticket.event.v1", "aftersale.request.v1", "aftersale.rules", "session",
                "assessment", "ticket", "wait", "request", "period", "audit-report")


@lru_cache(maxsize=None)
def _text(name: str) -> str:
    return resources.files(__package__).joinpath(name + SUFFIX).read_text(encoding="utf-8")


def load_schema(name: str) -> dict:
    """A fresh dict of the named schema; ``KeyError`` for a name that is not one of :data:`SCHEMA_NAMES`."""
    base = name.removesuffix(SUFFIX).replace("/", ".")
    if base not in SCHEMA_NAMES:
        raise KeyError(f"no schema {name!r}; known: {', '.join(SCHEMA_NAMES)}")
    return json.loads(_text(base))
