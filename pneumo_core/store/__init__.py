"""Where models live: a model directory (save, SHA-256 check, load, atomic promotion), the site profiles kept in it
and the MLflow Model Registry. The one path by which the served model changes is
:mod:`pneumo_core.operations.promotion`.

Light at import like :mod:`pneumo_core.serving`, which loads models through it: MLflow is imported inside the
functions that talk to the registry, TensorFlow only inside the functions that save or convert a Keras model.
"""
