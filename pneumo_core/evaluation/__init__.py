"""Measuring a model on labelled films: metrics with intervals, reports and figures, folder scoring through the
serving path, and the int8 copy's check against float32.

TensorFlow-free (pandas, scikit-learn, SciPy and Plotly are allowed). May import :mod:`pneumo_core.common`,
:mod:`pneumo_core.serving`, :mod:`pneumo_core.store` and, inside the functions that compare TFLite copies,
:mod:`pneumo_core.modeling`.
"""
