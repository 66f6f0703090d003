"""After-sales requests (RULES R11): a shadow evaluator of a seller's auto-approval rules, abuse
signals, and the seller's monthly review timeliness. A model of the runner (the Model contract of
``chatsla/core/models``): built as ``Aftersale(policy, config, host)``, fed events in
``(t, rank, event_id)`` order through :meth:`process`, called back through :meth:`fire` for the
deadlines it scheduled (on a timer channel of its own).

chatsla only observes: the decision is what the rule set in force *would* do (R11.0), compared
with what the first ``reviewed`` event says happened.

- **Evaluation (R11.3)** happens once, when a request's ``requested`` event is processed. The runner
  hands events over in ``(at, rank, event_id)`` order within the lateness, so limits and signals
  do not depend on arrival order (R11.3.1, R6.3); a late request (behind the watermark) is
  evaluated at once against what is known then and flagged ``late`` (R6.4). Later events never
  change a decision, so a request enters its day and week counts once; only ``agree`` moves.
- **Buyer history** (per shop and ``buyer_ref``: each request's time, SKU and the rule that
  approved it) serves the signals of R11.4 and ``per_buyer_limit``. It is the one place a buyer
  pseudonym is kept, and only as long as Amendment A.1 allows: the longest of ``repeat_window``
  and the per-buyer windows of the rule sets in use. Records never carry it.
- **Review timeliness (R11.6)** is derived from the earliest ``reviewed`` event and whether the
  watermark passed the due time, never accumulated (as tickets, R9.4.3), so any order of events
  within the lateness gives the same records. The due time (:func:`review_due`) is a plain
  duration after the request, or, for a working-day ``review_window`` (R11.6.1, N44), the service
  clock's due time in the shop's zone at the request; it is stored with the request.

Readings where RULES is silent (docs/rules.md, "Readings chatsla chose for R11"):
- a ``reviewed`` before its ``requested`` is held with its request id for ``dedupe_window`` and
  applied when the ``requested`` arrives (as R9.4.7); dropped ones count ``orphan``;
- a second ``requested`` for a known request id counts ``conflict`` and changes nothing;
- a review ``by: platform`` at or before the due time is not a review by the seller: not in time;
- a shop assigned a rule set this run does not know gets ``manual_review`` with reason
  ``unknown_rule_set:<ref>`` (counted ``unknown_rule_set``);
- period records (day, week: R11.5.2; month: R11.6.3) are emitted when the period ends and again at
  every later change; ``late`` is sticky once a late event changed an emitted one. The month
  record is ``provisional`` while a request of it awaits a review that is not yet decided.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from fractions import Fraction
from typing import ClassVar, Hashable

from chatsla.core.calendar import month_bounds, month_bounds_of
from chatsla.core.events import (AFTERSALE_REQUEST_TYPES, AftersaleRequest, ShopEvent, aftersale_from_list,
                                 aftersale_to_list)
from chatsla.core.models.shops import ShopZones
from chatsla.core.periods import DAY, WEEK, period_bounds, period_bounds_of
from chatsla.core.policy import WorkingWindow
from chatsla.core.rulesets import NONE, RuleSet, find_rule_set
from chatsla.core.service_clock import clock_for
from chatsla.core.timefmt import HOUR, MINUTE, format_time

MONTH = "month"
RANKS = {"requested": 1, "reviewed": 2}  # R11.1: shop events 0, then these
ALL = "all"
GROUPS = {"cancel": "cancellation", "refund_only": "return_refund", "return_refund": "return_refund",
          "exchange": "return_refund"}  # R11.6.3
APPROVE, MANUAL = "approve", "manual_review"
SIGNALS = ("repeat_buyer", "repeat_sku", "near_threshold")  # R11.4, this order


class Req:
    """One request's state (R11.5.1, R11.6). ``review``: the earliest ``reviewed`` event as
    ``[t, event_id, by, decision]``, or None; ``past_due``: the watermark passed ``due_at``."""

    __slots__ = ("shop_id", "request_id", "request_type", "reason", "category", "amount", "currency", "decision",
                 "decision_reason", "rule", "rules_ref", "signals", "requested_at", "review", "awaiting", "due_at",
                 "past_due", "late", "day", "week", "week_end", "month", "ids", "last_t")

    def to_list(self) -> list:
        return [getattr(self, k) for k in Req.__slots__]

    @classmethod
    def from_list(cls, v: list) -> "Req":
        r = cls.__new__(cls)
        for k, x in zip(Req.__slots__, v):
            setattr(r, k, x)
        r.ids, r.signals = list(r.ids), list(r.signals)
        r.review = list(r.review) if r.review is not None else None
        return r


def review_outcome(r: Req) -> tuple[bool, bool | None]:
    """(counted, reviewed_in_time) of R11.6.2: counted when awaiting the seller; in time when the
    earliest review is by the seller (or their rule) at or before ``due_at``; missed once the due
    time passed first; None while undecided."""
    if not r.awaiting:
        return False, None
    rv = r.review
    if rv is not None and rv[0] <= r.due_at:
        return True, rv[2] in ("seller", "seller_rule")
    if rv is not None or r.past_due:
        return True, False
    return True, None


def review_due(window: object, at: int, tz: str) -> int:
    """R11.6.1: the due time of a request made at ``at`` by a shop in zone ``tz``. A plain duration
    (µs) is wall time: ``at + window``. The working-day form (``WorkingWindow``) is service time on
    its clock (in ``tz`` when its timezone is ``"shop"``, the zone in force at the request, as
    R9.2.2): due(at, duration) of R9.2.5, carried over the days without a window. Computed once,
    at the request, and stored with it, so a restore or a later zone change never moves it."""
    if type(window) is int:
        return at + window
    w: WorkingWindow = window  # type: ignore[assignment]
    clock = clock_for(tz if w.window_timezone == "shop" else w.window_timezone, w.window_start, w.window_end,
                      w.window_days)
    return clock.due(at, w.duration)


def observed(r: Req) -> str | None:
    return None if r.review is None else f"{r.review[2]}:{r.review[3]}"


def agrees(r: Req) -> bool | None:
    """R11.5.1: a shadow approve agrees with ``seller_rule:approved``, a manual review with any
    other observed value; None until observed."""
    o = observed(r)
    if o is None:
        return None
    return (o == "seller_rule:approved") == (r.decision == APPROVE)


class Tally:
    """A period's counts: day or week per request type and ``all`` (R11.5.2), or month per group
    (R11.6.3). ``c``: [requests, auto_approved, manual_review, agree, disagree] or [awaiting_seller,
    reviewed_in_time, pending]; ``amounts``: currency -> Decimal string; reasons, signals: counts."""

    __slots__ = ("shop_id", "kind", "label", "sub", "start", "end", "c", "amounts", "reasons", "signals", "status",
                 "late")

    def __init__(self, shop_id: str, kind: str, label: str, sub: str, start: int, end: int) -> None:
        self.shop_id, self.kind, self.label, self.sub, self.start, self.end = shop_id, kind, label, sub, start, end
        self.c = [0, 0, 0] if kind == MONTH else [0, 0, 0, 0, 0]
        self.amounts: dict[str, str] = {}
        self.reasons: dict[str, int] = {}
        self.signals: dict[str, int] = {}
        self.status: str | None = None  # None until the period ends
        self.late = False

    def to_list(self) -> list:
        return [getattr(self, k) for k in Tally.__slots__]

    @classmethod
    def from_list(cls, v: list) -> "Tally":
        t = cls(*v[:6])
        t.c, t.amounts, t.reasons, t.signals, t.status, t.late = list(v[6]), dict(v[7]), dict(v[8]), dict(v[9]), v[10], v[11]
        return t


class Aftersale(ShopZones):
    """The ``aftersale`` model (RULES R11). See the module docstring."""

    kind: ClassVar[str] = "aftersale"
    record_kinds: ClassVar[tuple[str, ...]] = ("request", "period")  # formatted dicts

    def __init__(self, policy: object, config: object, host: object) -> None:
        self.policy = policy
        self.config = config
        self.host = host
        self.counters: Counter[str] = Counter()
        self.requests: dict[str, dict[str, Req]] = {}
        self.shop_tz: dict[str, str] = {}
        self.shop_ids: dict[str, list] = {}  # shop -> [[event_id, t], ...] of shop events applied
        self.assigned: dict[str, list] = {}  # shop -> [[t, event_id, ref], ...] sorted (R11.2)
        self.buyers: dict[tuple[str, str], list] = {}  # (shop, buyer_ref) -> [[t, sku, approved_by], ...]
        self.daily: dict[tuple[str, str, str, str], int] = {}  # (shop, set id, rule, day) -> approvals
        self.periods: dict[tuple[str, str, str, str], Tally] = {}
        self.orphans: dict[tuple[str, str], list[AftersaleRequest]] = {}
        self._default_tz = getattr(policy, "default_timezone", None) or getattr(config, "default_timezone", "UTC")
        self._dedupe = getattr(config, "dedupe_window", 8 * 24 * HOUR)
        self._keep = getattr(config, "allowed_lateness", 2 * MINUTE) + self._dedupe
        self._retention = getattr(config, "week_retention", 35 * 24 * HOUR)
        self._max_ids = getattr(config, "max_remembered_ids", 1000)
        self._sets: dict[str, RuleSet | None] = {}
        self._given = {rs.id: rs for rs in getattr(policy, "rule_sets", ())}
        self._buyer_keep = policy.repeat_window  # grows with the per-buyer windows of the sets used (A.1)
        for rs in self._given.values():
            self._note_windows(rs)
        self._defer = not getattr(host, "session_updates", True)
        self._ch = host.timer_channel(self._on_timer)
        self._push = host.push

    # ------------------------------------------------------------ contract
    def rank(self, ev: AftersaleRequest | ShopEvent) -> int:
        """Same-instant order (R11.1): shop events, then requested, then reviewed."""
        return 0 if type(ev) is ShopEvent else RANKS[ev.type]

    def stats(self) -> Counter[str]:
        """valid, duplicate, late (shop events only as the runner's lead), orphan, conflict,
        unknown_rule_set."""
        return Counter({k: v for k, v in self.counters.items() if v})

    def process(self, ev: AftersaleRequest | ShopEvent, late: bool) -> None:
        if type(ev) is ShopEvent:
            self._shop_event(ev, late)
            return
        shop = self.requests.get(ev.shop_id)
        r = shop.get(ev.request_id) if shop is not None else None
        if r is None:
            okey = (ev.shop_id, ev.request_id)
            held = self.orphans.get(okey)
            if held is not None and any(h.event_id == ev.event_id for h in held):
                self.counters["duplicate"] += 1
                return
            self.counters["valid"] += 1
            if late:
                self.counters["late"] += 1
            if ev.type != "requested":
                if held is None:
                    held = self.orphans[okey] = []
                    self._schedule(ev.t + self._dedupe, ("O", ev.shop_id, ev.request_id))
                held.append(ev)
                return
            r = self._request(ev, late)
            if held is not None:
                del self.orphans[okey]
                for h in sorted(held, key=lambda e: (e.t, e.event_id)):
                    r.ids.append(h.event_id)
                    self._review(r, h, True)
            return
        if ev.event_id in r.ids:
            self.counters["duplicate"] += 1
            return
        r.ids.append(ev.event_id)
        if len(r.ids) > self._max_ids:
            del r.ids[0]
        self.counters["valid"] += 1
        if late:
            self.counters["late"] += 1
        if ev.type == "requested":
            self.counters["conflict"] += 1
            return
        self._review(r, ev, late)

    def _on_timer(self, entry: tuple) -> None:
        self.fire(entry[0], entry[2])

    def _schedule(self, when: int, key: tuple) -> None:
        self._push((when, self._ch, key, None))

    def fire(self, when: int, key: Hashable) -> None:
        tag = key[0]  # type: ignore[index]
        if tag == "D":
            r = self.requests.get(key[1], {}).get(key[2])  # type: ignore[index]
            if r is None or r.due_at != when or r.past_due:
                return
            old = review_outcome(r)
            r.past_due = True
            if review_outcome(r) != old:  # the miss is decided at due_at (R11.6.2, as R9.4.3)
                self._move_month(r, old, False)
        elif tag == "P":
            p = self.periods.get(key[1:])  # type: ignore[index]
            if p is None or p.end != when or p.status is not None:
                return
            p.status = self._status(p)
            self._emit_period(p)
            self._schedule(p.end + self._retention, ("F", *key[1:]))  # type: ignore[misc]
        elif tag == "F":
            p = self.periods.get(key[1:])  # type: ignore[index]
            if p is not None and p.end + self._retention <= when:
                if self._defer and p.status is not None:
                    self.host.emit("period", self.period_record(p))
                del self.periods[key[1:]]  # type: ignore[index]
        elif tag == "E":
            shop = self.requests.get(key[1])  # type: ignore[index]
            r = shop.get(key[2]) if shop is not None else None  # type: ignore[index]
            if r is None:
                return
            at = self._evict_at(r)
            if at > when:
                self._schedule(at, key)  # type: ignore[arg-type]
                return
            if self._defer:
                self.host.emit("request", self.request_record(r))
            del shop[key[2]]  # type: ignore[index,union-attr]
            if not shop:
                del self.requests[key[1]]  # type: ignore[index]
        elif tag == "B":
            bkey = (key[1], key[2])  # type: ignore[index]
            hist = self.buyers.get(bkey)
            if not hist:
                return
            keep = [h for h in hist if h[0] + self._buyer_keep > when]  # A.1: no longer than needed
            if keep:
                self.buyers[bkey] = keep
                self._schedule(keep[0][0] + self._buyer_keep, key)  # type: ignore[arg-type]
            else:
                del self.buyers[bkey]
        elif tag == "L":
            self.daily.pop(key[1:], None)  # type: ignore[arg-type]
        elif tag == "O":
            okey = (key[1], key[2])  # type: ignore[index]
            held = self.orphans.get(okey)
            if not held:
                return
            keep = [h for h in held if h.t + self._dedupe > when]
            self.counters["orphan"] += len(held) - len(keep)
            if keep:
                self.orphans[okey] = keep
                self._schedule(min(h.t for h in keep) + self._dedupe, key)  # type: ignore[arg-type]
            else:
                del self.orphans[okey]

    def finish(self, until: int) -> None:
        """End of input: with ``session_updates=False`` every request and ended period still held
        is emitted once; held orphans stay held."""
        if not self._defer:
            return
        for shop in self.requests.values():
            for r in shop.values():
                self.host.emit("request", self.request_record(r))
        for p in self.periods.values():
            if p.status is not None:
                self.host.emit("period", self.period_record(p))

    def snapshot(self) -> dict:
        """Its parts of a snapshot; deadlines are scheduled again by :meth:`restore`."""
        return {
            "aftersale_shop_tz": dict(sorted(self.shop_tz.items())),
            "aftersale_shop_ids": {s: ids for s, ids in sorted(self.shop_ids.items())},
            "aftersale_assigned": {s: a for s, a in sorted(self.assigned.items())},
            "aftersale_requests": [r.to_list() for shop in self.requests.values() for r in shop.values()],
            "aftersale_buyers": [[s, b, hist] for (s, b), hist in self.buyers.items()],
            "aftersale_daily": [[*k, n] for k, n in self.daily.items()],
            "aftersale_periods": [p.to_list() for p in self.periods.values()],
            "aftersale_orphans": [[aftersale_to_list(e) for e in held] for held in self.orphans.values()],
        }

    # ------------------------------------------------------------ stored parts (the live worker)
    # The worker stores this model incrementally (streams/runtime.py, "Other models"), as tickets:
    # one entry per request, per held orphan group, per period (day, week per request type and
    # "all"; month per group), per buyer history, per daily-limit count and per shop (zone,
    # shop-event ids, rule-set assignments). Each goes when the model forgets it (R11 eviction,
    # A.1 for buyer history), so a checkpoint writes what changed and no entry grows with a shop's
    # traffic (issue #14). :meth:`track` remembers the changed keys.
    PART_TAGS: ClassVar[tuple[str, ...]] = ("aftersale_req", "aftersale_orphans", "aftersale_period",
                                           "aftersale_buyer", "aftersale_daily", "aftersale_shop")

    def track(self) -> None:
        """Remember the keys of what changes from now on. The places state changes are wrapped,
        not edited: :meth:`process` (the event's request and orphans, its buyer history, the
        daily count its approval moved, or its shop), :meth:`fire` (the deadline's request,
        period, buyer, daily count or orphans) and :meth:`_tally` (every count change of a
        period goes through it, and so does a period's creation)."""
        dirty: set[tuple] = set()
        self._dirty = dirty
        process, fire, tally = self.process, self.fire, self._tally
        fire_tags = {"D": "aftersale_req", "E": "aftersale_req", "P": "aftersale_period", "F": "aftersale_period",
                     "B": "aftersale_buyer", "L": "aftersale_daily", "O": "aftersale_orphans"}

        def tracked_process(ev: AftersaleRequest | ShopEvent, late: bool) -> None:
            process(ev, late)
            if type(ev) is ShopEvent:
                dirty.add(("aftersale_shop", ev.shop_id))
                return
            shop, rid = ev.shop_id, ev.request_id
            dirty.add(("aftersale_req", shop, rid))
            dirty.add(("aftersale_orphans", shop, rid))
            if ev.type == "requested":
                if ev.buyer_ref is not None:
                    dirty.add(("aftersale_buyer", shop, ev.buyer_ref))
                r = self.requests.get(shop, {}).get(rid)
                if r is not None and r.decision == APPROVE and r.rules_ref is not None:
                    rs = self._rule_set(r.rules_ref)
                    if rs is not None and (shop, rs.id, r.rule, r.day) in self.daily:
                        dirty.add(("aftersale_daily", shop, rs.id, r.rule, r.day))

        def tracked_fire(when: int, key: Hashable) -> None:
            fire(when, key)
            dirty.add((fire_tags[key[0]], *key[1:]))  # type: ignore[index]

        def tracked_tally(shop_id: str, kind: str, label: str, sub: str, tz: str) -> Tally:
            dirty.add(("aftersale_period", shop_id, kind, label, sub))
            return tally(shop_id, kind, label, sub, tz)

        self.process, self.fire, self._tally = tracked_process, tracked_fire, tracked_tally  # type: ignore[method-assign]

    def part(self, key: tuple) -> list | int | None:
        """The stored entry of ``key`` now; None if it is gone (evicted, forgotten, matched)."""
        tag, shop = key[0], key[1]
        if tag == "aftersale_req":
            r = self.requests.get(shop, {}).get(key[2])
            return r.to_list() if r is not None else None
        if tag == "aftersale_orphans":
            held = self.orphans.get((shop, key[2]))
            return [aftersale_to_list(e) for e in held] if held else None
        if tag == "aftersale_period":
            p = self.periods.get(key[1:])
            return p.to_list() if p is not None else None
        if tag == "aftersale_buyer":
            return self.buyers.get((shop, key[2])) or None
        if tag == "aftersale_daily":
            return self.daily.get(key[1:])
        if tag == "aftersale_shop":
            if shop not in self.shop_tz and shop not in self.shop_ids and shop not in self.assigned:
                return None
            return [self.shop_tz.get(shop), self.shop_ids.get(shop, []), self.assigned.get(shop, [])]
        raise ValueError(f"not an {self.kind} entry: {key!r}")

    def parts(self) -> list[tuple[tuple, object]]:
        """Every stored entry of the model now, in key order (what :meth:`from_parts` takes)."""
        keys = [("aftersale_req", s, r) for s, shop in self.requests.items() for r in shop]
        keys += [("aftersale_orphans", s, r) for s, r in self.orphans]
        keys += [("aftersale_period", *k) for k in self.periods]
        keys += [("aftersale_buyer", s, b) for s, b in self.buyers]
        keys += [("aftersale_daily", *k) for k in self.daily]
        keys += [("aftersale_shop", s) for s in self.shop_tz.keys() | self.shop_ids.keys() | self.assigned.keys()]
        return [(k, self.part(k)) for k in sorted(keys)]  # type: ignore[misc]

    @classmethod
    def from_parts(cls, policy: object, config: object, host: object, counters: dict, parts) -> "Aftersale":
        """The model its stored entries describe (all of one commit point: streams/runtime.py),
        deadlines scheduled again as in :meth:`restore`; tracked if ``host.track_dirty``. An
        ``aftersale_shop`` entry in the first, coarse form (a dict holding the shop's whole state)
        is still read."""
        snap: dict = {"counters": counters, "aftersale_shop_tz": {}, "aftersale_shop_ids": {}, "aftersale_assigned": {},
                      "aftersale_requests": [], "aftersale_buyers": [], "aftersale_daily": [], "aftersale_periods": [],
                      "aftersale_orphans": []}
        for key, v in parts:
            tag = key[0]
            if tag == "aftersale_req":
                snap["aftersale_requests"].append(v)
            elif tag == "aftersale_orphans":
                snap["aftersale_orphans"].append(v)
            elif tag == "aftersale_period":
                snap["aftersale_periods"].append(v)
            elif tag == "aftersale_buyer":
                snap["aftersale_buyers"].append([key[1], key[2], v])
            elif tag == "aftersale_daily":
                snap["aftersale_daily"].append([*key[1:], v])
            elif tag == "aftersale_shop" and type(v) is dict:  # the coarse form
                for k, x in v.items():
                    if type(x) is dict:
                        snap[k].update(x)
                    else:
                        snap[k].extend(x)
            elif tag == "aftersale_shop":
                tz, ids, assigned = v
                if tz is not None:
                    snap["aftersale_shop_tz"][key[1]] = tz
                if ids:
                    snap["aftersale_shop_ids"][key[1]] = ids
                if assigned:
                    snap["aftersale_assigned"][key[1]] = assigned
            else:
                raise ValueError(f"not an {cls.kind} entry: {key!r}")
        m = cls.restore(policy, config, host, snap)
        if getattr(host, "track_dirty", False):
            m.track()
        return m

    @classmethod
    def restore(cls, policy: object, config: object, host: object, snap: dict) -> "Aftersale":
        m = cls(policy, config, host)
        m.counters.update(snap.get("counters") or {})
        m.shop_tz = dict(snap["aftersale_shop_tz"])
        m.shop_ids = {s: [list(x) for x in ids] for s, ids in snap["aftersale_shop_ids"].items()}
        m.assigned = {s: [list(x) for x in a] for s, a in snap["aftersale_assigned"].items()}
        for a in m.assigned.values():
            for _, _, ref in a:
                rs = m._rule_set(ref)
                if rs is not None:
                    m._note_windows(rs)
        for v in snap["aftersale_requests"]:
            r = Req.from_list(v)
            m.requests.setdefault(r.shop_id, {})[r.request_id] = r
            if r.awaiting and not r.past_due:
                m._schedule(r.due_at, ("D", r.shop_id, r.request_id))
            m._schedule(m._evict_at(r), ("E", r.shop_id, r.request_id))
        for s, b, hist in snap["aftersale_buyers"]:
            m.buyers[(s, b)] = [list(h) for h in hist]
            m._schedule(hist[0][0] + m._buyer_keep, ("B", s, b))
        for *k, n in snap["aftersale_daily"]:
            m.daily[tuple(k)] = n  # type: ignore[index]
            m._schedule(m._day_end(k[0], k[3]) + m._keep, ("L", *k))
        for v in snap["aftersale_periods"]:
            p = Tally.from_list(v)
            m.periods[(p.shop_id, p.kind, p.label, p.sub)] = p
            if p.status is None:
                m._schedule(p.end, ("P", p.shop_id, p.kind, p.label, p.sub))
            else:
                m._schedule(p.end + m._retention, ("F", p.shop_id, p.kind, p.label, p.sub))
        for held in snap["aftersale_orphans"]:
            evs = [aftersale_from_list(x) for x in held]
            m.orphans[(evs[0].shop_id, evs[0].request_id)] = evs
            m._schedule(min(e.t for e in evs) + m._dedupe, ("O", evs[0].shop_id, evs[0].request_id))
        return m

    def view(self, shop_id: str, watermark: int | None) -> dict:
        """A shop's after-sales to date at ``watermark``: the day's, week's and month's ``all``
        rows (R11.5.2, R11.6.3) and the requests awaiting a review whose due time is ahead."""
        tz = self.shop_tz.get(shop_id, self._default_tz)
        out: dict = {"shop_id": shop_id, "watermark": None if watermark is None else format_time(watermark)}
        if watermark is None:
            return out
        for kind in (DAY, WEEK):
            start, end, label = period_bounds(kind, watermark, tz, self.policy.week_starts_on)
            p = self.periods.get((shop_id, kind, label, ALL)) or Tally(shop_id, kind, label, ALL, start, end)
            out[kind] = self.period_record(p)
        start, end, label = month_bounds(watermark, tz)
        out[MONTH] = [self.period_record(self.periods.get((shop_id, MONTH, label, g))
                                         or Tally(shop_id, MONTH, label, g, start, end))
                      for g in ("cancellation", "return_refund")]
        out["awaiting_review"] = sorted(
            ({"request_id": r.request_id, "request_type": r.request_type, "due_at": format_time(r.due_at)}
             for r in self.requests.get(shop_id, {}).values() if review_outcome(r) == (True, None)),
            key=lambda x: (x["due_at"], x["request_id"]))
        return out

    def to_date(self, shop_id: str, kind: str, sub: str, watermark: int) -> dict:
        """The record of the period of ``kind`` (``day``, ``week``: R11.5.2, ``sub`` a request type
        or ``all``; ``month``: R11.6.3, ``sub`` a group) that contains ``watermark``, on what is
        known so far: the empty period's record when nothing was counted in it yet. Read-only,
        so a scrape changes nothing (R6.1); the live projections read it (issue #14)."""
        tz = self.shop_tz.get(shop_id, self._default_tz)
        if kind == MONTH:
            start, end, label = month_bounds(watermark, tz)
        else:
            start, end, label = period_bounds(kind, watermark, tz, self.policy.week_starts_on)
        p = self.periods.get((shop_id, kind, label, sub))
        return self.period_record(p if p is not None else Tally(shop_id, kind, label, sub, start, end))

    # ------------------------------------------------------------ shop events, rule sets
    def _shop_event(self, ev: ShopEvent, late: bool) -> bool:
        """The shared handling (ids against copies, counting, the zone: ShopZones), then R11.2's
        rule-set assignment."""
        if not super()._shop_event(ev, late):
            return False
        if ev.type == "aftersale_rules":
            a = self.assigned.setdefault(ev.shop_id, [])
            a.append([ev.t, ev.event_id, ev.rules])
            a.sort()
            rs = self._rule_set(ev.rules)  # type: ignore[arg-type]
            if rs is not None:
                self._note_windows(rs)
        return True

    def _note_windows(self, rs: RuleSet) -> None:
        for rule in rs.rules:
            if rule.window > self._buyer_keep:
                self._buyer_keep = rule.window

    def _rule_set(self, ref: str) -> RuleSet | None:
        """The rule set ``ref`` names: one given to the run with its id (any version), else the
        bundled one; None when unknown or ``"none"``."""
        if ref == NONE:
            return None
        i = ref.split("@", 1)[0]
        if i in self._given:
            return self._given[i]
        if ref not in self._sets:
            self._sets[ref] = find_rule_set(ref)
        return self._sets[ref]

    def _ref_in_force(self, shop_id: str, t: int) -> str | None:
        """R11.2: the latest assignment at or before ``t``, else the policy's ``default_rules``
        (or, without one, the single rule set given to the run)."""
        ref = None
        for at, _, r in self.assigned.get(shop_id, ()):
            if at <= t:
                ref = r
            else:
                break
        if ref is None:
            ref = self.policy.default_rules
            if ref is None and len(self._given) == 1:
                ref = next(iter(self._given.values())).ref
        return ref

    # ------------------------------------------------------------ evaluation (R11.3, R11.4)
    def _evaluate(self, ev: AftersaleRequest, tz: str) -> tuple[str, str, str | None, str | None, object, bool]:
        """(decision, reason, rule name, rules_ref, the approve rule matched or None, approved)."""
        p = self.policy
        ref = self._ref_in_force(ev.shop_id, ev.t)
        rs = self._rule_set(ref) if ref is not None else None
        rules_ref = rs.ref if rs is not None else (ref if ref not in (None, NONE) else None)
        window = p.platform_return_window.get(ev.category) if ev.category is not None else None
        if window is not None and ev.delivered_at is not None and ev.request_type != "cancel" \
                and ev.t > ev.delivered_at + window:  # R11.3.2: the platform first
            return MANUAL, "platform:outside_return_window", None, rules_ref, None, False
        if ref is None or ref == NONE:
            return MANUAL, "no_rule_set", None, None, None, False
        if rs is None:
            self.counters["unknown_rule_set"] += 1
            return MANUAL, f"unknown_rule_set:{ref}", None, ref, None, False
        amount = Decimal(ev.amount)  # type: ignore[arg-type]
        for rule in rs.rules:
            if not _matches(rule, ev, amount, rs.currency):
                continue
            if rule.action == MANUAL:
                return MANUAL, rule.reason, rule.name, rs.ref, None, False
            if rule.per_buyer_count is not None:
                if ev.buyer_ref is None:
                    return MANUAL, f"limit:buyer_unknown:{rule.name}", rule.name, rs.ref, rule, False
                key = f"{rs.id}\x1f{rule.name}"
                lo = ev.t - rule.per_buyer_window  # type: ignore[operator]
                n = sum(1 for h in self.buyers.get((ev.shop_id, ev.buyer_ref), ()) if h[2] == key and lo <= h[0] < ev.t)
                if n >= rule.per_buyer_count:
                    return MANUAL, f"limit:per_buyer:{rule.name}", rule.name, rs.ref, rule, False
            if rule.daily_count is not None:
                day = period_bounds(DAY, ev.t, tz)[2]
                if self.daily.get((ev.shop_id, rs.id, rule.name, day), 0) >= rule.daily_count:
                    return MANUAL, f"limit:daily:{rule.name}", rule.name, rs.ref, rule, False
            return APPROVE, f"rule:{rule.name}", rule.name, rs.ref, rule, True
        return MANUAL, "no_rule_matched", None, rs.ref, None, False

    def _request(self, ev: AftersaleRequest, late: bool) -> Req:
        p = self.policy
        tz = self.shop_tz.get(ev.shop_id, self._default_tz)
        decision, reason, rule_name, rules_ref, approve_rule, approved = self._evaluate(ev, tz)
        rs = self._rule_set(rules_ref) if rules_ref is not None else None
        if approved:
            if approve_rule.daily_count is not None:  # type: ignore[union-attr]
                start, end, day = period_bounds(DAY, ev.t, tz)
                dkey = (ev.shop_id, rs.id, rule_name, day)  # type: ignore[union-attr]
                if dkey not in self.daily:
                    self._schedule(end + self._keep, ("L", *dkey))
                self.daily[dkey] = self.daily.get(dkey, 0) + 1
        signals = []
        if ev.buyer_ref is not None:  # R11.4.1-2, counting this request
            bkey = (ev.shop_id, ev.buyer_ref)
            hist = self.buyers.get(bkey)
            if hist is None:
                hist = self.buyers[bkey] = []
                self._schedule(ev.t + self._buyer_keep, ("B", ev.shop_id, ev.buyer_ref))
            hist.append([ev.t, ev.sku_id, f"{rs.id}\x1f{rule_name}" if approved else None])  # type: ignore[union-attr]
            hist.sort(key=lambda h: h[0])
            lo = ev.t - p.repeat_window
            inside = [h for h in hist if lo <= h[0] <= ev.t]
            if len(inside) >= p.repeat_buyer_min:
                signals.append("repeat_buyer")
            if ev.sku_id is not None and sum(1 for h in inside if h[1] == ev.sku_id) >= p.repeat_sku_min:
                signals.append("repeat_sku")
        if approve_rule is not None and approve_rule.amount_max is not None and \
                Decimal(ev.amount) >= approve_rule.amount_max * (1 - p.near_threshold_band):  # type: ignore[arg-type]
            signals.append("near_threshold")  # R11.4.3
        r = Req.__new__(Req)
        r.shop_id, r.request_id, r.request_type, r.reason = ev.shop_id, ev.request_id, ev.request_type, ev.reason
        r.category, r.amount, r.currency = ev.category, ev.amount, ev.currency
        r.decision, r.decision_reason, r.rule, r.rules_ref, r.signals = decision, reason, rule_name, rules_ref, signals
        r.requested_at, r.review, r.awaiting = ev.t, None, bool(ev.awaiting_seller)
        r.due_at = review_due(p.review_window[ev.request_type], ev.t, tz)
        r.past_due, r.late, r.ids, r.last_t = False, late, [ev.event_id], ev.t
        ds, de, r.day = period_bounds(DAY, ev.t, tz)
        ws, r.week_end, r.week = period_bounds(WEEK, ev.t, tz, p.week_starts_on)
        r.month = month_bounds(ev.t, tz)[2]
        self.requests.setdefault(ev.shop_id, {})[ev.request_id] = r
        if r.awaiting:
            self._schedule(r.due_at, ("D", r.shop_id, r.request_id))
        self._schedule(self._evict_at(r), ("E", r.shop_id, r.request_id))
        self._emit_request(r)
        # its counts (once: the decision never changes, R11.3.1)
        for kind in p.periods:
            label = r.day if kind == DAY else r.week
            for sub in (r.request_type, ALL):
                t = self._tally(r.shop_id, kind, label, sub, tz)
                c = t.c
                c[0] += 1
                if approved:
                    c[1] += 1
                    prev = t.amounts.get(r.currency)  # type: ignore[arg-type]
                    t.amounts[r.currency] = str(Decimal(prev) + Decimal(r.amount) if prev else Decimal(r.amount))  # type: ignore[index,arg-type]
                else:
                    c[2] += 1
                    t.reasons[reason] = t.reasons.get(reason, 0) + 1
                for s in signals:
                    t.signals[s] = t.signals.get(s, 0) + 1
                self._changed(t, late)
        m = self._tally(r.shop_id, MONTH, r.month, GROUPS[r.request_type], tz)  # type: ignore[index]
        if r.awaiting:
            m.c[0] += 1
            m.c[2] += 1
            self._changed(m, late)
        return r

    def _review(self, r: Req, ev: AftersaleRequest, late: bool) -> None:
        """A ``reviewed`` event of a known request: the earliest one is the observed outcome."""
        if ev.t > r.last_t:
            r.last_t = ev.t
        cand = [ev.t, ev.event_id, ev.by, ev.decision]
        if r.review is not None and r.review[:2] <= cand[:2]:
            return  # a further review: the first one counts (R11.5.1, R11.6.2)
        old_agree, old = agrees(r), review_outcome(r)
        r.review = cand
        if late:
            r.late = True
        self._emit_request(r)
        new_agree = agrees(r)
        if new_agree != old_agree:
            tz = self.shop_tz.get(r.shop_id, self._default_tz)
            for kind in self.policy.periods:
                label = r.day if kind == DAY else r.week
                for sub in (r.request_type, ALL):
                    t = self._tally(r.shop_id, kind, label, sub, tz)
                    if old_agree is not None:
                        t.c[3 if old_agree else 4] -= 1
                    t.c[3 if new_agree else 4] += 1
                    self._changed(t, late)
        if review_outcome(r) != old:
            self._move_month(r, old, late)

    def _move_month(self, r: Req, old: tuple, late: bool) -> None:
        tz = self.shop_tz.get(r.shop_id, self._default_tz)
        m = self._tally(r.shop_id, MONTH, r.month, GROUPS[r.request_type], tz)
        _, was = old
        _, now = review_outcome(r)
        m.c[1] += (now is True) - (was is True)
        m.c[2] += (now is None) - (was is None)
        self._changed(m, late)

    # ------------------------------------------------------------ periods
    def _tally(self, shop_id: str, kind: str, label: str, sub: str, tz: str) -> Tally:
        key = (shop_id, kind, label, sub)
        t = self.periods.get(key)
        if t is None:
            start, end = month_bounds_of(label, tz) if kind == MONTH else period_bounds_of(kind, label, tz)
            t = self.periods[key] = Tally(shop_id, kind, label, sub, start, end)
            self._schedule(end, ("P", *key))
        return t

    def _status(self, t: Tally) -> str:
        return "provisional" if t.kind == MONTH and t.c[2] else "final"

    def _changed(self, t: Tally, late: bool) -> None:
        if t.status is not None:  # emitted already: again, with the change (R11.5.2, R6.4)
            t.status = self._status(t)
            if late:
                t.late = True
            self._emit_period(t)

    def _evict_at(self, r: Req) -> int:
        return max(r.week_end + self._retention, r.due_at + self._keep, r.last_t + self._keep)

    def _day_end(self, shop_id: str, day: str) -> int:
        return period_bounds_of(DAY, day, self.shop_tz.get(shop_id, self._default_tz))[1]

    # ------------------------------------------------------------ records
    def request_record(self, r: Req) -> dict:
        """R11.5.1, keys in order."""
        return {
            "request_id": r.request_id, "shop_id": r.shop_id, "request_type": r.request_type, "reason": r.reason,
            "category": r.category, "amount": r.amount, "currency": r.currency,
            "decision": r.decision, "decision_reason": r.decision_reason, "rule": r.rule, "rules_ref": r.rules_ref,
            "signals": list(r.signals),
            "requested_at": format_time(r.requested_at),
            "observed": observed(r), "agree": agrees(r),
            "late": r.late, "day": r.day, "week_start": r.week,
            "policy_id": self.policy.id, "policy_version": self.policy.version,
        }

    def period_record(self, t: Tally) -> dict:
        """R11.5.2 (day, week) or R11.6.3 (month), keys in order."""
        c = t.c
        if t.kind == MONTH:
            awaiting, in_time = c[0], c[1]
            if awaiting == 0:
                outcome = "not_assessed"
            elif Fraction(in_time, awaiting) < self.policy.review_rate_below:
                outcome = "auto_approval_tool_risk"
            else:
                outcome = "ok"
            return {"shop_id": t.shop_id, "period": MONTH, "start": t.label, "group": t.sub,
                    "awaiting_seller": awaiting, "reviewed_in_time": in_time, "pending": c[2],
                    "review_rate": in_time / awaiting if awaiting else None, "outcome": outcome,
                    "status": t.status, "late": t.late,
                    "policy_id": self.policy.id, "policy_version": self.policy.version}
        return {"shop_id": t.shop_id, "period": t.kind, "start": t.label, "request_type": t.sub,
                "requests": c[0], "auto_approved": c[1], "manual_review": c[2],
                "auto_approval_rate": c[1] / c[0] if c[0] else None,
                "auto_approved_amount": dict(sorted(t.amounts.items())),
                "manual_reasons": dict(sorted(t.reasons.items())),
                "signals": {s: t.signals[s] for s in SIGNALS if s in t.signals},
                "agree": c[3], "disagree": c[4], "status": t.status, "late": t.late,
                "policy_id": self.policy.id, "policy_version": self.policy.version}

    def _emit_request(self, r: Req) -> None:
        if not self._defer:
            self.host.emit("request", self.request_record(r))

    def _emit_period(self, t: Tally) -> None:
        if not self._defer:
            self.host.emit("period", self.period_record(t))


def _matches(rule: object, ev: AftersaleRequest, amount: Decimal, currency: str) -> bool:
    """Whether every condition of ``rule`` holds for ``ev`` (R11.3.3); an absent condition matches."""
    r = rule
    if r.effective_from is not None and ev.t < r.effective_from:  # type: ignore[attr-defined]
        return False
    if r.effective_to is not None and ev.t >= r.effective_to:  # type: ignore[attr-defined]
        return False
    if r.request_types is not None and ev.request_type not in r.request_types:  # type: ignore[attr-defined]
        return False
    if r.reasons is not None and ev.reason not in r.reasons:  # type: ignore[attr-defined]
        return False
    if r.categories is not None and ev.category not in r.categories:  # type: ignore[attr-defined]
        return False
    if r.amount_min is not None or r.amount_max is not None:  # type: ignore[attr-defined]
        if ev.currency != currency:
            return False
        if r.amount_min is not None and amount < r.amount_min:  # type: ignore[attr-defined]
            return False
        if r.amount_max is not None and amount > r.amount_max:  # type: ignore[attr-defined]
            return False
    if r.credit_min is not None and (ev.buyer_credit is None or ev.buyer_credit < r.credit_min):  # type: ignore[attr-defined]
        return False
    if r.credit_below is not None and (ev.buyer_credit is None or ev.buyer_credit >= r.credit_below):  # type: ignore[attr-defined]
        return False
    if r.shipped is not None and ev.shipped is not r.shipped:  # type: ignore[attr-defined]
        return False
    if r.return_cost_exceeds_amount is not None:  # type: ignore[attr-defined]
        # strict, "运费高于货值" (N41); a request without the cost does not match
        if ev.return_shipping_cost is None or (Decimal(ev.return_shipping_cost) > amount) is not r.return_cost_exceeds_amount:  # type: ignore[attr-defined]
            return False
    return True


__all__ = ["Aftersale", "AFTERSALE_REQUEST_TYPES"]
