"""Live projections of RULES R8: what the dashboards show, per shop and for the fleet.

Pure and Faust-free: plain data in, plain data out, time as integer microseconds handed in (the
watermark), never read from a clock, so a replay computes the same projections (R6.1). The
streaming worker (``streams/metrics.py``) feeds these from the engine's state at scrape time.
"""

from chatsla.projections.aftersale import ReviewProjection, aftersale_view, project_review
from chatsla.projections.fleet import EndedWeek, FleetSummary, ShopView, fleet_summary, select_shops
from chatsla.projections.risk import OpenSession, at_risk, longest_wait
from chatsla.projections.rolling import RollingRate
from chatsla.projections.weekly import WeekProjection, project_week, replies_needed

__all__ = [
    "EndedWeek", "FleetSummary", "OpenSession", "ReviewProjection", "RollingRate", "ShopView", "WeekProjection",
    "aftersale_view", "at_risk", "fleet_summary", "longest_wait", "project_review", "project_week", "replies_needed",
    "select_shops",
]
