"""Streamlit-side helpers shared by the pages: cached resources, small widgets, the case report."""
