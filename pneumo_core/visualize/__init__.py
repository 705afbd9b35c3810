"""Figures (Plotly) of what other packages measure: the confusion matrix, ROC, precision-recall, reliability and
risk-coverage curves, site and monitoring histograms, training curves, one answer's probability scale.

Each function takes numbers already computed (it measures nothing) and returns a figure; the app shows them and
:mod:`pneumo_core.evaluation.reports` writes them beside a model. No Streamlit. May import
:mod:`pneumo_core.common`, :mod:`pneumo_core.store` and :mod:`pneumo_core.serving`.
"""
