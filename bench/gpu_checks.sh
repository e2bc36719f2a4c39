#!/usr/bin/env bash
# The GPU checks docs/performance.md reports, in one call on a machine with a CUDA device and a python3 that
# holds torch, transformers and accelerate (satimp is taken from src/, not installed):
#   1. the GPU-marked tests (two deterministic fine-tuning runs on CUDA end bit-identical);
#   2. bench/throughput.py on the `medium` preset (bf16, batch 16 x 512: the target
#      "SatImp unlearning >= 40 % MFU"), eager and with --compile inductor;
#   3. bench/throughput.py on a SmolLM2-135M-shaped model with random weights (SMOL_DIR: a
#      folder with SmolLM2's config.json and tokenizer files, e.g. copied from the model
#      cache; the weights are drawn here: throughput does not depend on them);
#   4. `satimp run` on the embedded default, on the GPU, cold (its own empty caches).
# Usage: bench/gpu_checks.sh OUT_DIR [SMOL_DIR]. Each step has a time limit; logs go to OUT_DIR.
set -u
out=${1:?usage: bench/gpu_checks.sh OUT_DIR [SMOL_DIR]}
smol=${2:-}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

step() {  # step NAME SECONDS COMMAND...: run with a limit, log to OUT_DIR/NAME.log, time it
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit $limit s): $*"
    local t0=$SECONDS
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    echo "-- $name: rc $rc, $((SECONDS - t0)) s"
    tail -n 14 "$out/$name.log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, accelerate; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'accelerate', accelerate.__version__)"

step gpu_tests 150 python3 -m pytest -p no:cacheprovider -m gpu -rA tests/test_train.py
step throughput_medium 120 python3 bench/throughput.py --preset medium
step throughput_medium_compiled 200 python3 bench/throughput.py --preset medium \
    --modes satimp,finetune --compile inductor
if [ -n "$smol" ]; then
    python3 - "$smol" <<'EOF'
import sys
import torch
from transformers import AutoConfig, LlamaForCausalLM

torch.manual_seed(0)
folder = sys.argv[1]
LlamaForCausalLM(AutoConfig.from_pretrained(folder)).save_pretrained(folder)
EOF
    step throughput_smollm2_shape 100 python3 bench/throughput.py --model "$smol"
    step throughput_smollm2_shape_compiled 120 python3 bench/throughput.py --model "$smol" \
        --modes satimp --compile inductor
fi
run=$(mktemp -d)
step run_default 200 python3 -m satimp.cli run --out "$run/out" "cache_dir=$run/cache"
ls "$run/out" 2>/dev/null
