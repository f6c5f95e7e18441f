#!/usr/bin/env bash
# The prepared GPU check (issue 13): the whole catalogue on smollm2-135m and minilm-l6 with --device cuda
# in float32 and bfloat16, the suite-vs-floor benchmark on cuda, and a summary in $OUT (or reports/).
#   scripts/gpu_check.sh                 # on a GPU machine, within 8 minutes (--budget-s 480)
#   scripts/gpu_check.sh --device cpu    # dry mode on CPU: tiny models, 8 prompts
# Every option is passed to scripts/gpu_check.py (see its --help).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY="${PYTHON:-python3}"; fi
exec "$PY" scripts/gpu_check.py "$@"
