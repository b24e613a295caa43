"""Analyst reads: one query engine (engine.py) and the thresholds it applies (thresholds.py)."""

from .engine import DIMENSIONS, METRICS, Cell, StatsQuery, StatsResult, run

__all__ = ["DIMENSIONS", "METRICS", "Cell", "StatsQuery", "StatsResult", "run"]
