#!/usr/bin/env bash
# Every benchmark at its GPU size on one GPU, plus a full-size sprites generator trained long
# enough to report its attribute control; the figures go to the "## GPU" section of
# benchmarks/RESULTS.md (the CPU sections are left alone). Meant to finish in under 8 minutes on
# one modern GPU.
#
#   bash benchmarks/gpu.sh              # install the gpu + bench extras, run, record
#   bash benchmarks/gpu.sh --dry-run    # print the commands and check that every script exists
#                                       # and knows every flag passed to it (CPU, seconds)
#
# Run from the repository root. Logs and the generator run go to $GPU_WORK (default
# /tmp/densesynth_gpu).
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
WORK="${GPU_WORK:-/tmp/densesynth_gpu}"
GEN_STEPS="${GPU_GENERATOR_STEPS:-3000}"

# name | command (python scripts only; the first word after `python` is the script)
STEPS=(
  "generator step (full size, batch 32, 64x64)|python benchmarks/bench_generator.py --batch 32 --size 64 --steps 20 --rounds 3 --no-record"
  "DeepSTN step (AlexNet-like, 227x227)|python benchmarks/bench_deepstn.py --gpu-config --image_size 227 --repeats 5 --no_write"
  "local RankSVM (1,000 test pairs, K 100, 990-d)|python benchmarks/bench_local_ranksvm.py --no_write"
  "GIST + Lab (4,096 images, 64x64)|python benchmarks/bench_gist.py --num_images 4096"
  "full-size sprites generator ($GEN_STEPS steps) and its control|python train_generator.py --config=configs/generator_sprites.py --workdir=$WORK/generator --config.train.num_steps=$GEN_STEPS"
  "synthesis of 2,000 identities with that generator|python benchmarks/bench_synth.py --generator=$WORK/generator --identities 2000 --no-record"
)

check_flags() {  # the script exists and its --help lists every --flag the command passes
  local script="$1"; shift
  [ -f "$script" ] || { echo "gpu.sh: missing script $script" >&2; return 1; }
  local help
  if [ "$script" = "train_generator.py" ]; then
    help="$(python "$script" --helpfull 2>&1 || true)"
  else
    help="$(python "$script" --help 2>&1 || true)"
  fi
  for arg in "$@"; do
    case "$arg" in
      --config.*) continue ;;  # config overrides: checked against the config file at run time
      --*) flag="${arg%%=*}"
           grep -q -- "$flag" <<<"$help" || { echo "gpu.sh: $script does not know $flag" >&2; return 1; } ;;
    esac
  done
}

if [ "$DRY" = 1 ]; then
  for step in "${STEPS[@]}"; do
    cmd="${step#*|}"
    echo "[dry-run] ${step%%|*}: $cmd"
    # shellcheck disable=SC2086
    set -- $cmd
    shift  # python
    check_flags "$@"
  done
  echo "[dry-run] ok: ${#STEPS[@]} commands"
  exit 0
fi

pip install -q -e '.[gpu,bench]'
mkdir -p "$WORK"
python -c "import jax; print('jax', jax.__version__, jax.default_backend(), jax.devices())" \
  | tee "$WORK/devices.txt"
section="$WORK/section.md"
{
  echo "## GPU"
  echo
  echo "\`bash benchmarks/gpu.sh\` on $(date -u +%Y-%m-%d): $(cat "$WORK/devices.txt");"
  echo "$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1)."
  echo
} > "$section"
for step in "${STEPS[@]}"; do
  name="${step%%|*}"; cmd="${step#*|}"
  echo "[gpu] $name: $cmd"
  log="$WORK/$(echo "$name" | tr -c 'a-zA-Z0-9' '_').log"
  start=$(date +%s)
  # shellcheck disable=SC2086
  if $cmd > "$log" 2>&1; then status="ok"; else status="FAILED (exit $?)"; fi
  secs=$(( $(date +%s) - start ))
  {
    echo "### $name ($status, ${secs} s)"
    echo
    echo "\`$cmd\`"
    echo
    echo '```'
    grep -v '^\[.*\] [0-9]*/[0-9]* (' "$log" | tail -n 25
    echo '```'
    echo
  } >> "$section"
done
if [ -f "$WORK/generator/generator_eval.json" ]; then
  {
    echo "### Generator control (generator_eval.json)"
    echo
    echo '```'
    python -c "import json,sys; e=json.load(open(sys.argv[1])); print(json.dumps({a: {k: v for k, v in c.items() if k in ('spearman', 'spearman_within_identity', 'pair_accuracy')} for a, c in e['control'].items()}, indent=1)); print('val', e['val'], 'seconds', e['seconds'])" "$WORK/generator/generator_eval.json"
    echo '```'
  } >> "$section"
fi
python - "$section" <<'EOF'
import sys
sys.path.insert(0, "benchmarks")
from _common import write_section
write_section(open(sys.argv[1]).read())
EOF
echo "[gpu] written: benchmarks/RESULTS.md (## GPU)"
