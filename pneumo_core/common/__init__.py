"""What every other package shares: logits and probabilities, and how labelled films are laid out on disk.

Imports NumPy and the standard library only, and nothing else of ``pneumo_core`` but its root (class names).
"""
