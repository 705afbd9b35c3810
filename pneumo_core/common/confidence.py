"""The confidence of every interval, bound and promise the project states, defined once."""

CONFIDENCE = 0.95
"""Two-sided intervals cover with this probability; a one-sided bound or a promise holds with at least it."""
