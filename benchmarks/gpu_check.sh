#!/usr/bin/env bash
# The one prepared GPU check, run first whenever a GPU machine is lent (see README, "GPU").
#
#   bash benchmarks/gpu_check.sh            # results under ${OUT:-out/gpu_check}
#
# It needs a Python that already has torch (CUDA build) and torchvision; the device machine reaches no
# package registry, so nothing is installed here: torchscope runs from this checkout via PYTHONPATH.
# Each step is bounded by `timeout`, writes its own JSON/log, and a failing step does not stop the rest;
# the script exits non-zero if any step failed. The step limits add up to 550 s, inside one device call.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
OUTDIR=${OUT:-out/gpu_check}
mkdir -p "$OUTDIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
failed=0

step() {  # step NAME SECONDS CMD...
  local name=$1 secs=$2; shift 2
  echo "== $name"
  if timeout "$secs" "$@" >"$OUTDIR/$name.log" 2>&1; then
    tail -n 25 "$OUTDIR/$name.log"
  else
    echo "!! $name failed (exit $?)"; tail -n 40 "$OUTDIR/$name.log"; failed=1
  fi
}

"$PY" - <<'PY' || { echo "no usable torch with CUDA here"; exit 2; }
import torch
assert torch.cuda.is_available(), "torch.cuda.is_available() is False"
print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))
PY

# 1. record()'s overhead on a resnet50 training step, on the GPU (goal <= 1.05).
step overhead 90 "$PY" benchmarks/overhead.py --device cuda --steps 20 --json "$OUTDIR/overhead.json"
# 2. bench resnet50, bf16 autocast, channels_last: eager, then torch.compile.
step bench_eager 110 "$PY" -m torchscope bench --model resnet50 --device cuda --amp bf16 --channels-last \
  --windows 3 --output "$OUTDIR/bench_eager.json" --force
step bench_compiled 160 "$PY" -m torchscope bench --model resnet50 --device cuda --amp bf16 --channels-last \
  --compile --windows 3 --output "$OUTDIR/bench_compiled.json" --force
# 3. memory's prediction against torch.cuda.max_memory_allocated(), and --fit against reality.
step memory 150 "$PY" benchmarks/memory_gpu.py --models resnet50,densenet161,inception_v3,vit_b_16
# 4. the freeze guard's overhead at every=1 on a resnet18 fine-tune, and the s/GB of one check of a
#    1.1B-param bf16 Llama-class model (built from a config, on the GPU); goal <= 1.03x.
step guard_overhead 40 "$PY" benchmarks/guard_overhead.py --device cuda --pairs 20 --llm-layers 22 \
  --json "$OUTDIR/guard_overhead.json"

exit $failed
