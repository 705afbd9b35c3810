"""Answering: decode a file, bring it to the model's view, run the serving graph, explain the answer.

:class:`~pneumo_core.serving.predictor.Predictor` is the one way a model answers (CLI, app, REST API, benchmarks).
Every module here is free of TensorFlow, Keras, pandas, scikit-learn, SciPy and MLflow at import: with the LiteRT
runtime an answer and its heat maps need none of them. May import :mod:`pneumo_core.common`, :mod:`pneumo_core.store`
and, for the TensorFlow runtime only when it is asked for, :mod:`pneumo_core.modeling`.
"""
