"""Running a deployed model: a site's operating point (threshold rules, fitting and its checks, diagnostics),
monitoring of what was answered, the shadow challenger, operator access and the audit log.

TensorFlow-free; light at import (scikit-learn and SciPy are imported by the functions that fit). May import
:mod:`pneumo_core.common`, :mod:`pneumo_core.serving`, :mod:`pneumo_core.store` and :mod:`pneumo_core.evaluation`.
"""
