"""Running a deployed model: monitoring of what was answered (the monitoring store and drift), the shadow challenger,
operator access, the audit log and promotion (the one path by which the served model changes). A site's operating
point is fitted in :mod:`pneumo_core.operating_point`.

TensorFlow-free; light at import (SciPy is imported by the functions that test drift). May import
:mod:`pneumo_core.common`, :mod:`pneumo_core.serving`, :mod:`pneumo_core.store` and :mod:`pneumo_core.evaluation`.
"""
