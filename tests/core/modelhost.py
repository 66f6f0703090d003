"""The model tests' host: one model on the real runner (``chatsla.core.runner.Runner``, issue #12).

The tests of ``service_tickets`` and ``im_waits`` drive their model only through this module, so
what they check is what the audit, the replay and the worker run: events buffered and applied in
``(t, rank, event_id)`` order once the watermark (largest event time minus ``lateness``) passes
them (R6.2, R6.3); an event behind the watermark applied at once with ``late=True`` (R6.4);
deadlines fired once the watermark passes them, before an event at the same instant only if
strictly earlier; ``snapshot`` / ``restore`` through JSON, as a changelog would carry them
(R6.1). Time sanity is off here (``max_future=None``): the rule examples jump hours and days
between one event and the next, or tick far ahead of the last event, as a fixture and not as a
skewed clock; the runner's screening has its own tests (tests/core/test_time_sanity.py).
"""

from __future__ import annotations

import dataclasses

import orjson

from chatsla.core.runner import EngineConfig, Runner
from chatsla.core.timefmt import MINUTE


def _config(config: EngineConfig | None, lateness: int) -> EngineConfig:
    return dataclasses.replace(config or EngineConfig(), allowed_lateness=lateness, max_future=None)


class Host:
    """``model_cls`` with ``policy`` hosted alone on a :class:`Runner`; records collect in ``out``
    as ``(kind, record)`` pairs (``out`` may be replaced: the sink appends to the current list)."""

    def __init__(self, model_cls, policy, config=None, lateness: int = 2 * MINUTE,
                 session_updates: bool = True) -> None:
        self.policy, self.config, self.lateness = policy, _config(config, lateness), lateness
        self.out: list[tuple[str, dict]] = []
        self.runner = Runner(self.config, sink=self._emit, session_updates=session_updates)
        self.model = self.runner.add_model(model_cls, policy)

    def _emit(self, kind: str, record: dict) -> None:
        self.out.append((kind, record))

    @property
    def frontier(self) -> int | None:
        return self.runner.frontier

    @property
    def watermark(self) -> int | None:
        return self.runner.watermark

    # -------------------------------------------------------------- driving
    def feed(self, events) -> "Host":
        for ev in events:
            self.runner.apply(ev)
        return self

    def advance(self, t: int) -> "Host":
        """A tick: the watermark moves to ``t - lateness`` (if later)."""
        self.runner.advance(t)
        return self

    def finish(self, until: int) -> "Host":
        """End of input: apply everything buffered, fire deadlines before ``until``."""
        self.runner.finish(until)
        return self

    # -------------------------------------------------------------- state
    def snapshot(self) -> bytes:
        return orjson.dumps(self.runner.snapshot())

    @classmethod
    def restore(cls, model_cls, policy, config, raw: bytes, lateness: int = 2 * MINUTE,
                session_updates: bool = True) -> "Host":
        h = cls.__new__(cls)
        h.policy, h.config, h.lateness = policy, _config(config, lateness), lateness
        h.out = []
        h.runner = Runner.from_snapshot(h.config, [(model_cls, policy)], orjson.loads(raw), sink=h._emit,
                                        session_updates=session_updates)
        h.model = h.runner.models[0]
        return h

    # -------------------------------------------------------------- reading
    def stats(self):
        """The runner's counters with the model's (buffered copies are counted by the runner)."""
        return +self.runner.stats

    def records(self, kind: str) -> list[dict]:
        return [r for k, r in self.out if k == kind]

    def latest(self, kind: str, key) -> dict[tuple, dict]:
        """The last record of each identity (later records supersede earlier ones)."""
        out = {}
        for k, r in self.out:
            if k == kind:
                out[key(r)] = r
        return out
