"""The networks, in TensorFlow/Keras: architectures (Keras Applications bases with our head), the compiled serving
graphs and their TFLite export, ensembles, and the saliency sanity check that randomises a model's weights.

Imported only by training, by the TensorFlow runtime and by the commands that need Keras. May import
:mod:`pneumo_core.common`, :mod:`pneumo_core.jobs`, :mod:`pneumo_core.store` and :mod:`pneumo_core.serving`.
"""
