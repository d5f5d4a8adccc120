#!/usr/bin/env bash
# seqjax launcher: one entry point for set-up, tests, experiments and benchmarks.
#
#   ./launch.sh                      set up, then run the main job (chargen on the embedded corpus)
#   ./launch.sh setup                make .venv and install seqjax[dev] (idempotent, fast when nothing changed)
#   ./launch.sh test [pytest args]   set up, then run the test suite
#   ./launch.sh EXPERIMENT [--workdir DIR] [--config FILE_OR_PRESET] [--config.KEY=VALUE ...]   train (or resume)
#   ./launch.sh EXPERIMENT VERB --workdir DIR ...     use a trained run: chargen sample, sentiment predict,
#                                    seq2seq translate, timeseries forecast (EXPERIMENT: any experiments/*/)
#   ./launch.sh multiprocess N EXPERIMENT [ARGS ...]   train as N processes of one JAX run on this machine
#                                    (a free localhost port joins them; how multi-process training is tested)
#   ./launch.sh sweep EXPERIMENT --grid KEY=V1,V2 [--seeds N] [--emit] ...   an ablation (--help: all options)
#   ./launch.sh claims [--quick]     measure the source articles' claims: sweeps -> docs/claims.md (--help)
#   ./launch.sh bench [args]         benchmarks/rnn_throughput.py
#   ./launch.sh python ...           run the venv's python
#
# Environment:
#   ACCEL=cpu|cuda|tpu   which jax build to install (default cpu). cuda installs jax[cuda12], tpu jax[tpu].
#   TORCH=1              also install the [torch] extra (torch==2.13.0, a reference for parity tests and benchmarks).
#   VENV=path            where the virtual environment lives (default .venv).
#   SEQJAX_DISTRIBUTED=auto    several hosts: JAX detects the cluster (Cloud TPU, SLURM, Open MPI, Kubernetes);
#   SEQJAX_COORDINATOR=HOST:PORT SEQJAX_NUM_PROCESSES=N SEQJAX_PROCESS_ID=I   or say it explicitly.
#
# Several hosts run the same command, with --workdir on storage that all of them mount:
#   Cloud TPU pod:  gcloud compute tpus tpu-vm ssh NAME --zone ZONE --worker=all --command \
#                     "cd seqjax && ACCEL=tpu SEQJAX_DISTRIBUTED=auto ./launch.sh chargen --workdir /mnt/shared/run1"
#   SLURM (GPUs):   ACCEL=cuda ./launch.sh setup     # once, then one process per GPU:
#                   srun --nodes=2 --ntasks-per-node=8 --gpus-per-node=8 \
#                     env ACCEL=cuda SEQJAX_DISTRIBUTED=auto ./launch.sh chargen --workdir /shared/run1
#   One machine:    ./launch.sh multiprocess 2 chargen --config tiny
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV=${VENV:-$ROOT/.venv}
ACCEL=${ACCEL:-cpu}
TORCH=${TORCH:-0}
PY="$VENV/bin/python"

setup() {
  case "$ACCEL" in cpu|cuda|tpu) ;; *) echo "launch.sh: ACCEL must be cpu, cuda or tpu, got '$ACCEL'" >&2; exit 2;; esac
  local stamp="$VENV/.seqjax-setup"
  local want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1) accel=$ACCEL"
  if [ -x "$PY" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    [ "$TORCH" = "1" ] && [ ! -f "$VENV/.seqjax-torch" ] && install_torch
    return 0
  fi
  echo "== setting up $VENV (accel=$ACCEL)"
  if [ ! -x "$PY" ]; then
    local base=${PYTHON:-python3}
    "$base" -c 'import sys; assert sys.version_info >= (3, 10), "seqjax needs Python >= 3.10"' || exit 1
    "$base" -m venv "$VENV"
  fi
  if [ "$ACCEL" = cpu ]; then pip_install -e ".[dev,native]"; else pip_install -e ".[dev]"; fi
  case "$ACCEL" in
    cuda) pip_install -U "jax[cuda12]";;
    tpu)  pip_install -U "jax[tpu]";;
  esac
  [ "$TORCH" = "1" ] && install_torch
  echo "$want" > "$stamp"
  "$PY" -c 'import jax; print("== jax", jax.__version__, "on", jax.default_backend(), jax.devices())'
}

pip_install() {
  # pip, minus the per-package warnings some machines' pip.conf produces for missing local indexes
  local rc=0
  "$PY" -m pip install -q "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  rc=${PIPESTATUS[0]}
  return "$rc"
}

install_torch() {
  # Exactly 2.13.0: any range pulls the CUDA build and gigabytes of dependencies.
  pip_install "torch==2.13.0" && touch "$VENV/.seqjax-torch"
}

cmd=${1:-main}
[ $# -gt 0 ] && shift
case "$cmd" in
  setup) setup ;;
  test)
    setup
    exec "$PY" -m pytest "$@" ;;
  main)
    setup
    exec "$PY" -m experiments.chargen "$@" ;;
  sweep)
    setup
    exec "$PY" -m seqjax.sweep "$@" ;;
  claims)
    setup
    exec "$PY" -m experiments.claims "$@" ;;
  bench)
    setup
    exec "$PY" benchmarks/rnn_throughput.py "$@" ;;
  multiprocess)
    n=${1:-}
    exp=${2:-}
    if ! [[ "$n" =~ ^[1-9][0-9]*$ ]] || ! [[ "$exp" =~ ^[a-z0-9_]+$ ]] || [ ! -f "experiments/$exp/__main__.py" ]; then
      echo "launch.sh: usage: ./launch.sh multiprocess N EXPERIMENT [ARGS ...] (N >= 1 processes; got '${n}' '${exp}')" >&2
      exit 2
    fi
    shift 2
    setup
    exec "$PY" -m seqjax.train.multiprocess "$n" "$PY" -m "experiments.$exp" "$@" ;;
  python)
    setup
    exec "$PY" "$@" ;;
  -h|--help|help)
    awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0" ;;
  *)
    if [[ "$cmd" =~ ^[a-z0-9_]+$ ]] && [ -f "experiments/$cmd/__main__.py" ]; then
      setup
      exec "$PY" -m "experiments.$cmd" "$@"
    fi
    experiments=$(cd experiments && ls -d */__main__.py 2>/dev/null | cut -d/ -f1 | tr '\n' ' ')
    hint=""
    case "$cmd" in
      sample) hint=" (sampling is now: ./launch.sh chargen sample --workdir DIR ...)";;
      predict) hint=" (prediction is now: ./launch.sh sentiment predict --workdir DIR ...)";;
    esac
    echo "launch.sh: unknown command '$cmd'$hint. Expected setup, test, sweep, claims, bench, multiprocess, python, or an experiment: ${experiments% } (no command runs the main job)." >&2
    exit 2 ;;
esac
