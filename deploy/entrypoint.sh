#!/bin/sh
# The container's entry point: `app` (the default), `api`, `train ARGS…` (the train image), `pneumo ARGS…` (the CLI,
# e.g. `pneumo predict FILE`), or any other command as given.
# PNEUMO_HOST / PNEUMO_APP_PORT / PNEUMO_API_PORT: where the servers listen (0.0.0.0, 8501, 8000).
set -eu
mkdir -p "${PNEUMO_RUNS_DIR:-/data/runs}"
host=${PNEUMO_HOST:-0.0.0.0}
case "${1:-app}" in
  app)
    shift $(($# > 0 ? 1 : 0))
    exec streamlit run /app/streamlit_app.py --server.address "$host" --server.port "${PNEUMO_APP_PORT:-8501}" "$@" ;;
  api)
    shift
    exec uvicorn pneumo_api:app --host "$host" --port "${PNEUMO_API_PORT:-8000}" "$@" ;;
  train)
    shift
    exec python3 /app/train.py "$@" ;;
  pneumo)
    shift
    exec python3 -m pneumo_core "$@" ;;
  *)
    exec "$@" ;;
esac
