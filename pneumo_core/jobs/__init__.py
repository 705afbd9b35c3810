"""Training jobs seen from outside TensorFlow: what a run is asked to do (:mod:`~pneumo_core.jobs.request`), its
progress file, starting, following and cancelling one ``train.py`` process, and the history of past runs.

TensorFlow-free, so the Training page and ``train.py``'s argument parsing never load it. May import
:mod:`pneumo_core.common`.
"""
