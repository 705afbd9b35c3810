"""The colours every figure shares: calm series colours, the decisions' colours, the neutral greys."""

from __future__ import annotations

BLUE, AMBER, GREEN, PURPLE = "#1f5f8b", "#b7791f", "#4c8c4a", "#8a4f9e"
SERIES = (BLUE, AMBER, GREEN, PURPLE)
"""One colour per compared series (internal test, then each site), in this order."""
GREY = "#8a99a6"
"""Reference lines: the diagonal, the threshold."""
PALE = "#eef2f5"
"""Backgrounds and empty cells."""
INK = "#1d2730"
"""Text on a pale cell."""
DECISION_COLOURS = {"NORMAL": "#2e7d32", "PNEUMONIA": "#c62828", "REFER": AMBER, "withheld": GREY}
"""Each decision's colour wherever answers are counted."""
