"""Measuring a model on labelled films: metrics with intervals, reports and figures, folder scoring through the
serving path, the int8 copy's check against float32 and the saliency sanity check.

TensorFlow-free at import (pandas, scikit-learn, SciPy and Plotly are allowed). May import :mod:`pneumo_core.common`,
:mod:`pneumo_core.serving`, :mod:`pneumo_core.store`, :mod:`pneumo_core.visualize` and, inside the functions that
export TFLite copies or run Keras models, :mod:`pneumo_core.modeling`.
"""
