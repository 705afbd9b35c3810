"""pneumo — a research demo of pneumonia classification on pediatric chest X-rays.

Run with ``streamlit run streamlit_app.py``. The pages are not in a folder named ``pages/``: Streamlit runs such a
folder in its legacy multipage mode for a server's first deep-linked visitor (``/training``), skipping this file and
with it the disclaimer and the navigation. This file only sets up the page
and navigation; each page lives in ``app_pages/`` and every piece of ML in
``pneumo_core``.
"""

from pneumo_core.config import SettingError, check_settings, quiet_tensorflow

quiet_tensorflow()

import streamlit as st  # noqa: E402

from pneumo_core import DISCLAIMER  # noqa: E402
from ui.operator_gate import signed_in_status  # noqa: E402
from ui.resources import keep_compiled_functions, start_loading, warm_training_history  # noqa: E402
from ui.widgets import disclaimer_banner, operating_point_label  # noqa: E402

st.set_page_config(page_title="pneumo — chest X-ray research demo", page_icon=":material/pulmonology:", layout="wide")
try:
    check_settings()
except SettingError as error:  # a wrong PNEUMO_* value: said, named, and nothing else runs
    st.error(f"The server's settings need fixing: {error}", icon=":material/settings:")
    st.stop()
keep_compiled_functions()
warm_training_history()  # once per server, in the background: the Metrics page lists the training runs

navigation = st.navigation(
    [
        st.Page("app_pages/classify.py", title="Classify", icon=":material/radiology:", default=True),
        st.Page("app_pages/metrics.py", title="Metrics", icon=":material/monitoring:"),
        st.Page("app_pages/site_profiles.py", title="Site profiles", icon=":material/tune:"),
        st.Page("app_pages/training.py", title="Training", icon=":material/model_training:"),
        st.Page("app_pages/monitoring.py", title="Monitoring", icon=":material/query_stats:"),
        st.Page("app_pages/model_card.py", title="Model card", icon=":material/description:"),
    ]
)

with st.sidebar:
    st.markdown("### :material/pulmonology: pneumo")
    st.warning(DISCLAIMER, icon=":material/warning:")
    loading = start_loading()  # once per server process, in the background: the page paints meanwhile
    if loading.future:
        st.caption(f"Model: `{loading.model_name}`  \nOperating point: **{operating_point_label(loading.operating_point)}**")
    else:
        st.caption("No model is being served.")
    signed_in_status()

navigation.run()
disclaimer_banner()
