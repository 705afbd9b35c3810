"""The confidence of every interval, bound and promise the project states, and the bootstrap's size, defined once."""

CONFIDENCE = 0.95
"""Two-sided intervals cover with this probability; a one-sided bound or a promise holds with at least it."""
BOOTSTRAP_RESAMPLES = 2000
"""Patient resamples of every percentile bootstrap (ROC AUC, PR AUC, F1, a paired AUC difference): enough that the
2.5% and 97.5% percentiles each rest on 50 resamples."""
