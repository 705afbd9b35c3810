#!/bin/sh
# Remove from the image's Python environment what serving and training never run or read (bench/image.py measures
# what each line saves):
# - pip, bytecode caches (the images set PYTHONDONTWRITEBYTECODE) and the packages' own test suites;
# - sources and headers that wheels ship for building against them (C, C++, Cython), type stubs, source maps;
# - LiteRT's WebGPU accelerator (the images run on CPU);
# - Arrow Flight (Arrow's RPC layer: Streamlit and pandas use Arrow in memory only), the two unversioned copies
#   of libarrow_python (wheels cannot hold symlinks; the loader opens libarrow_python.so.2500), and the symbols
#   Arrow's own libraries ship for debuggers (`strip`, from binutils in the build stage; the wheels' vendored
#   libraries elsewhere are left alone: patchelf rewrote them, and strip breaks such files);
# - the Jupyter extensions of pydeck and Plotly, and plotly.js itself (Streamlit's page draws Plotly figures with
#   its own copy; written reports link it from its CDN);
# - fontTools' compiled speed-ups (each has its pure-Python module beside it: the PDF report embeds one font).
set -eu
venv=${1:-/opt/venv}
site=$(echo "$venv"/lib/python3*/site-packages)
rm -rf "$site"/pip "$site"/pip-*.dist-info "$venv"/bin/pip "$venv"/bin/pip3*
find "$venv" -name __pycache__ -prune -exec rm -rf {} +
find "$site" -type d -name tests -prune -exec rm -rf {} +
find "$site" -type f \( -name '*.c' -o -name '*.cc' -o -name '*.cpp' -o -name '*.h' -o -name '*.hpp' -o -name '*.pyx' \
    -o -name '*.pxd' -o -name '*.pxi' -o -name '*.pyi' -o -name '*.map' \) -delete
rm -rf "$site"/pyarrow/include "$site"/pyarrow/src
rm -f "$site"/ai_edge_litert/libLiteRtWebGpuAccelerator.so
rm -f "$site"/pyarrow/libarrow_flight.so.* "$site"/pyarrow/_flight.*.so "$site"/pyarrow/libarrow_python_flight.so* \
    "$site"/pyarrow/flight.py "$site"/pyarrow/libarrow_python.so "$site"/pyarrow/libarrow_python.so.*.*.*
strip --strip-unneeded "$site"/pyarrow/*.so "$site"/pyarrow/*.so.*
rm -rf "$site"/pydeck/nbextension "$site"/plotly/labextension "$site"/plotly/package_data/plotly.min.js
find "$site"/fontTools -name '*.so' -delete
