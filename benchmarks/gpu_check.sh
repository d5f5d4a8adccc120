#!/usr/bin/env bash
# The long-sequence and cuDNN checks on a CUDA GPU machine, in one go (under 8 minutes):
#   1. prints the device (nvidia-smi, jax.devices());
#   2. runs the parity tests: every scan evaluation and the parallel-scan cells against their step
#      loops, and the cuDNN LSTM (layout, and the kernel itself) against the lax.scan path;
#   3. runs the throughput benchmark: the LSTM's scan path, the cuDNN path and torch.nn.LSTM
#      (cuDNN), the GRU, and minGRU under each evaluation, at T = 1024 and 4096.
#
#   benchmarks/gpu_check.sh                 # on the GPU machine, from anywhere
#   benchmarks/gpu_check.sh --cpu-dry-run   # without a GPU: the same steps at tiny sizes (checks the script)
#
# Python: $PYTHON if set, else .venv/bin/python, else python3. It needs jax with CUDA support; torch
# (with CUDA) is optional: without it the torch row says it was skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

dry=0
case "${1:-}" in
  --cpu-dry-run) dry=1 ;;
  "") ;;
  *) echo "gpu_check.sh: unknown option '$1'; expected --cpu-dry-run or nothing" >&2; exit 2 ;;
esac
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*"; }

stamp "== device"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || nvidia-smi
else
  echo "nvidia-smi: not found"
fi
backend=$("$PY" -c "import jax; print(jax.default_backend())")
"$PY" -c "import jax; print('jax', jax.__version__, 'backend', jax.default_backend(), jax.devices())"
"$PY" -c "from benchmarks.machine import cpu_model; print('host CPU:', cpu_model())"
if [ "$backend" != "gpu" ] && [ "$dry" = 0 ]; then
  echo "gpu_check.sh: JAX's default backend is '$backend', not a GPU; install jax with CUDA support, or pass" \
       "--cpu-dry-run to check the script itself" >&2
  exit 1
fi

stamp "== parity tests"
tests=(tests/test_scan.py tests/test_cudnn.py
       "tests/test_long_cells.py::test_every_evaluation_matches_the_step_loop"
       "tests/test_long_cells.py::test_gradients_match_autodiff_of_the_step_form"
       "tests/test_long_cells.py::test_padded_batch_equals_each_sequence_alone")
if [ "$dry" = 1 ]; then tests=(tests/test_cudnn.py "tests/test_scan.py::test_every_method_matches_a_step_loop"); fi
timeout 240 "$PY" -m pytest -q -x -rs "${tests[@]}"

stamp "== throughput (training step: value and gradient of mean(ys^2) w.r.t. params and inputs)"
variants=gru,lstm,lstm:cudnn,torch:lstm,mingru,mingru:sequential,mingru:chunked,mingru:associative,mingru-floor
if [ "$dry" = 1 ]; then
  timeout 300 "$PY" benchmarks/long_sequences.py --quick --variants "$variants"
else
  timeout 330 "$PY" benchmarks/long_sequences.py --T 1024,4096 --B 16 --I 256 --H 256 --repeats 5 \
    --variants "$variants" --json gpu_check.json
  echo "rows also in gpu_check.json"
fi
stamp "done"
