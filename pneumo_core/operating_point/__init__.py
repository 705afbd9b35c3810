"""A site's operating point: the threshold, the referral band and the promises they make about the site's next films.

Data flows one way: :mod:`.bounds` (exact bounds from counts) → :mod:`.promises` (what an operating point promises)
→ :mod:`.rules` (threshold rules and referral bands, fitted so that their promises reach a target) → :mod:`.fit`
(the whole fit from scores: temperature, threshold, band, promise, what the sample cannot support) →
:mod:`.simulation` (the fit checked on simulated sites of the sample's size) and :mod:`.calibration` (a site profile
from a scored folder or score records, with intervals by patient and shift diagnostics).

Light at import: SciPy and scikit-learn are imported by the functions that fit. May import
:mod:`pneumo_core.common`, :mod:`pneumo_core.store` and :mod:`pneumo_core.evaluation`.
"""
