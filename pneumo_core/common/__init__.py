"""What every other package shares: logits and probabilities, how labelled films are laid out on disk, and the one
preprocessing path (:mod:`~pneumo_core.common.preprocess`) that training and serving both run.

Imports NumPy, OpenCV, Pillow and the standard library only, and nothing else of ``pneumo_core`` but its root (class
names).
"""
