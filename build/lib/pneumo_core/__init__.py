"""pneumo_core: a DenseNet121 pneumonia classifier for pediatric chest X-rays.

Research demo, not a medical device, not for clinical use.

Every piece of ML lives here (decode, preprocess, data, model, train, evaluate,
predict, explain) so that the Streamlit pages, ``train.py``, the
``python -m pneumo_core`` command line and the tests share one implementation.
"""

CLASS_NAMES: tuple[str, str] = ("NORMAL", "PNEUMONIA")
"""Label order: index 1 is the positive class, P(PNEUMONIA) is the model output."""

DISCLAIMER = "Research demo — not a medical device, not for clinical use."
