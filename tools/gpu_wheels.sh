#!/usr/bin/env bash
# Download into ./.whl the wheels that the GPU machine's Python 3.12 lacks for running the suite (about 20 MB).
# Its image already holds torch 2.11, torchvision, pytest, pytest-xdist, coverage, matplotlib, tensorboard,
# tqdm, numpy, pillow, scikit-learn, torchmetrics, jinja2, pygments, attrs, python-dateutil... (the device
# tool's package list); Jupyter's kernel stack, nbval and ipywidgets are what is missing. Run from the project
# root on a machine that reaches the package index; `.whl/` is git-ignored. docs/gpu-runs.md
# says how the wheels are installed there (`pip install --target`), and `make gpu-rehearsal` proves it here.
set -eu
cd "$(dirname "$0")/.."
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_26 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux_2_12 \
           manylinux_2_5 manylinux1; do
  platforms+=(--platform "${tag}_x86_64")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" --platform any -d .whl \
  nbval nbclient nbformat jupyter_client jupyter_core ipykernel ipython pyzmq tornado traitlets \
  comm debugpy jedi parso prompt_toolkit wcwidth pexpect ptyprocess stack_data executing asttokens \
  pure_eval decorator matplotlib-inline fastjsonschema jsonschema jsonschema-specifications \
  referencing rpds-py platformdirs nest_asyncio ipython-pygments-lexers \
  ipywidgets widgetsnbextension jupyterlab_widgets 2>&1 | grep -v 'is ignored' || true
echo "$(ls .whl | wc -l) wheels, $(du -sh .whl | cut -f1), in .whl/"
