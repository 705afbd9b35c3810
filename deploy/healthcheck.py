"""The container's health check: healthy when the REST API answers ``/readyz`` or the app ``/_stcore/health``.

Run by the image's ``HEALTHCHECK`` (the image has no curl); it tries whichever servers the entry point may have started,
on the ports ``deploy/entrypoint.sh`` reads, and exits 0 on the first 200.
"""

import os
import sys
import urllib.request

HOST = os.environ.get("PNEUMO_HOST", "0.0.0.0")
ADDRESS = "127.0.0.1" if HOST in ("0.0.0.0", "::", "") else HOST
PROBES = (
    f"http://{ADDRESS}:{os.environ.get('PNEUMO_API_PORT', '8000')}/readyz",
    f"http://{ADDRESS}:{os.environ.get('PNEUMO_APP_PORT', '8501')}/_stcore/health",
)


def healthy() -> bool:
    for url in PROBES:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                if response.status == 200:
                    return True
        except OSError:
            continue
    return False


if __name__ == "__main__":
    sys.exit(0 if healthy() else 1)
