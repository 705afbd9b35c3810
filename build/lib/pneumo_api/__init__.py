"""pneumo's REST API: FastAPI over pneumo_core, answering exactly as the ``predict`` command line does.

Run with ``uvicorn pneumo_api:app --host 127.0.0.1 --port 8000``; OpenAPI at ``/openapi.json``, docs at ``/docs``.
"""

from .main import app, create_app

__all__ = ["app", "create_app"]
