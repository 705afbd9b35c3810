#!/bin/sh
# Remove from the image's Python environment what serving and training never run: pip, bytecode caches (the images
# set PYTHONDONTWRITEBYTECODE), the packages' own test suites and LiteRT's WebGPU accelerator (the images run on CPU).
set -eu
venv=${1:-/opt/venv}
site=$(echo "$venv"/lib/python3*/site-packages)
rm -rf "$site"/pip "$site"/pip-*.dist-info "$venv"/bin/pip "$venv"/bin/pip3*
find "$venv" -name __pycache__ -prune -exec rm -rf {} +
find "$site" -type d -name tests -prune -exec rm -rf {} +
rm -f "$site"/ai_edge_litert/libLiteRtWebGpuAccelerator.so
