"""Measured backend selection: which runner serves a model on this host, by measuring it.

Public surface:
    Selector, SelectionSettings, Selection   measure candidates, choose, cache (``selector``)
    Measurement, displaces, choose, rank     the pure policy over measured candidates
    compare_outputs, DEFAULT_TOLERANCE       the accuracy guard against the fp32 reference
    time_interleaved, warm_up                candidates timed in rotating bursts, budget, CPU share
    SelectionCache, cache_key                results by (bundle, hardware, runtime versions)
"""

from agent.selection.cache import SelectionCache, cache_key
from agent.selection.guard import DEFAULT_TOLERANCE, compare_outputs
from agent.selection.measure import Timing, time_interleaved, warm_up
from agent.selection.policy import (
    MARGIN_PCT,
    Choice,
    Measurement,
    NoCandidate,
    choose,
    displaces,
    rank,
)
from agent.selection.selector import Selection, SelectionSettings, Selector

__all__ = [
    "DEFAULT_TOLERANCE",
    "MARGIN_PCT",
    "Choice",
    "Measurement",
    "NoCandidate",
    "Selection",
    "SelectionCache",
    "SelectionSettings",
    "Selector",
    "Timing",
    "cache_key",
    "choose",
    "compare_outputs",
    "displaces",
    "rank",
    "time_interleaved",
    "warm_up",
]
