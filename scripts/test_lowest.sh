#!/usr/bin/env bash
# The lowest versions pyproject.toml allows must work: install every direct dependency
# at its floor (uv's --resolution lowest-direct) into a separate venv, .venv-lowest,
# and run a fast subset of the tests there. torch is the exception: it is pinned to the
# CPU wheel the main setup uses (a floor of torch would pull a multi-GB CUDA build).
# Usage: bash scripts/test_lowest.sh [pytest args]   (CI: .ci/run calls it after test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${LOWEST_VENV:-.venv-lowest}
TORCH=${TORCH_VERSION:-2.13.0}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q uv
"$VENV/bin/python" -c 'import torch' 2>/dev/null || "$VENV/bin/python" -m pip install -q "torch==$TORCH"
echo "torch==$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')" \
  > "$VENV/constraints.txt"
"$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --resolution lowest-direct \
  --constraint "$VENV/constraints.txt" -e . "pytest>=8"
"$VENV/bin/python" - <<'EOF'
import importlib.metadata as m
names = ["torch", "transformers", "trl", "datasets", "accelerate", "peft", "tokenizers",
         "fastapi", "uvicorn", "openai", "httpx", "cvss", "cwe2", "math-verify"]
print("lowest-direct:", ", ".join(f"{n} {m.version(n)}" for n in names))
EOF
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# The fast subset: the contract, the tasks and KBs, rewards (TRL), the recipes building
# real TRL trainers, the trainers' adapters and exports, the server's protocol.
"$VENV/bin/python" -m pytest -q -p no:cacheprovider \
  tests/test_reasoning.py tests/tasks tests/kb \
  tests/train/test_train_rewards.py tests/train/test_train_recipes.py tests/train/test_tiny.py \
  tests/integrations tests/serve/test_serve_protocol.py "$@"
