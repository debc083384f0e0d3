#!/usr/bin/env bash
# Create .venv and install secreason with its test tools. torch is installed FIRST and
# pinned to the CPU wheel so that no dependency pulls a multi-GB CUDA build; GPU users
# install their own torch before running this (or skip this script: pip install -e '.[dev]').
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -c 'import torch' 2>/dev/null || .venv/bin/python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
.venv/bin/python -m pip install -q -e '.[dev]'
