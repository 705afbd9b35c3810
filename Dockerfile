# syntax=docker/dockerfile:1
# pneumo in a container: two targets from one file.
#   serve  the Streamlit app and the REST API on LiteRT, without TensorFlow (`docker run IMAGE app` or `... api`)
#   train  serve plus TensorFlow and train.py, for training jobs (`docker run IMAGE train --epochs 15`)
# Build: deploy/build-image.sh serve|train (Docker when a daemon answers, else buildah), or
#   docker build --target serve -t pneumo:serve .
# Behind a TLS-inspecting proxy give pip its CA bundle as a build secret, `--secret id=pip_cert,src=CA.crt`
# (deploy/build-image.sh does): mounted for the pip steps only, never copied into the image.

FROM debian:bookworm-slim AS runtime-base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates fonts-dejavu-core \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*

# The Python environment for serving, built with pip in a stage of its own (pip and the venv module stay out of it).
FROM runtime-base AS serve-env
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*
COPY requirements-serve.txt /tmp/requirements/
RUN --mount=type=secret,id=pip_cert \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install -r /tmp/requirements/requirements-serve.txt

FROM serve-env AS train-env
COPY requirements.txt requirements-train.txt /tmp/requirements/
RUN --mount=type=secret,id=pip_cert \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
 && /opt/venv/bin/pip install -r /tmp/requirements/requirements.txt

# Each environment without what it never runs (deploy/prune-venv.sh), ready to be copied into its image.
FROM serve-env AS serve-venv
COPY deploy/prune-venv.sh /tmp/
RUN apt-get update && apt-get install -y --no-install-recommends binutils && sh /tmp/prune-venv.sh /opt/venv

FROM train-env AS train-venv
COPY deploy/prune-venv.sh /tmp/
RUN apt-get update && apt-get install -y --no-install-recommends binutils && sh /tmp/prune-venv.sh /opt/venv

# What both images share: a user without privileges, the code owned by root (read-only to the user), and one
# writable volume for everything the app writes. Each image adds the served model, read-only too.
FROM runtime-base AS app-base
RUN useradd --uid 10001 --no-create-home --home-dir /data --shell /usr/sbin/nologin pneumo \
 && mkdir -p /data \
 && chown pneumo:pneumo /data
ENV PATH=/opt/venv/bin:$PATH \
    PNEUMO_RUNS_DIR=/data/runs \
    PNEUMO_PROFILES_DIR=/data/site_profiles \
    MLFLOW_TRACKING_URI=sqlite:////data/mlflow.db \
    PNEUMO_HOST=0.0.0.0 \
    HOME=/data
WORKDIR /app
COPY .streamlit/config.toml .streamlit/config.toml
COPY streamlit_app.py train.py pyproject.toml ./
COPY pneumo_core pneumo_core
COPY pneumo_api pneumo_api
COPY ui ui
COPY app_pages app_pages
COPY examples examples
COPY deploy/entrypoint.sh deploy/healthcheck.py deploy/
VOLUME /data
EXPOSE 8501 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["python3", "/app/deploy/healthcheck.py"]
ENTRYPOINT ["/app/deploy/entrypoint.sh"]
CMD ["app"]

FROM app-base AS train
COPY --from=train-venv /opt/venv /opt/venv
COPY models/served models/served
USER pneumo

# The served model without its Keras file, which only the TensorFlow runtime reads: LiteRT serves the TFLite copies.
FROM app-base AS serve
COPY --from=serve-venv /opt/venv /opt/venv
COPY models/served/metadata.json models/served/model.tflite models/served/model_int8.tflite models/served/ood.npz \
     models/served/
COPY models/served/evaluation models/served/evaluation
COPY models/served/site_profiles models/served/site_profiles
ENV PNEUMO_TRAINING=off
USER pneumo
