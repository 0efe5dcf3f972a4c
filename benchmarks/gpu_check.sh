#!/usr/bin/env bash
# One GPU check of vaelab, at most about 8 minutes on a CUDA machine; prints one table.
#
#   bash benchmarks/gpu_check.sh            # from the repository root
#
# Installs vaelab (over the machine's torch), then on cuda: the default `vaelab train`,
# the speed rows of the default model in fp32, bf16 and bf16 with --compile, a K=1000
# evaluation of the default run, and a 2-process DDP run when two GPUs are present.
# MNIST comes from $VAELAB_DATA_DIR (a folder holding mnist/), else it is downloaded.
set -uo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --no-deps -e . >/dev/null 2>&1 || python -m pip install --quiet -e .
python - <<'PY' || exit 1
import torch
assert torch.cuda.is_available(), "no CUDA device: this check is for a GPU machine"
print(f"torch {torch.__version__}, {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}")
PY
OUT=$(mktemp -d)
RESULTS="$OUT/results.tsv"
: > "$RESULTS"

row() {  # row NAME SECONDS RUN_DIR
    python - "$@" >> "$RESULTS" <<'PY'
import json, statistics, sys
from pathlib import Path
name, wall, run = sys.argv[1], float(sys.argv[2]), Path(sys.argv[3])
metrics = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
speeds = [m["images_per_second"] for m in metrics][1:] or [metrics[0]["images_per_second"]]
summary = json.loads((run / "summary.json").read_text())
precision = "bf16" if "bf16" in (run / "log.txt").read_text().splitlines()[0] else "fp32"
print("\t".join([name, precision, f"{statistics.median(speeds):,.0f}", str(len(metrics)),
                 f"{wall:.0f}", f"{summary['test_loss']:.2f}", "-"]))
PY
}

train() {  # train NAME ARGS...
    local name=$1; shift
    local start=$SECONDS
    timeout 240 python -m vaelab train --device cuda --no-progress --out "$OUT/$name" "$@" \
        > "$OUT/$name.log" 2>&1 && cp "$OUT/$name.log" "$OUT/$name/log.txt" \
        && row "$name" $((SECONDS - start)) "$OUT/$name" \
        || printf '%s\t-\t-\t-\t-\t-\tfailed: %s\n' "$name" "$(tail -1 "$OUT/$name.log")" >> "$RESULTS"
}

train default
train default-fp32 --precision fp32 --epochs 3
train default-bf16 --precision bf16 --epochs 3
train default-bf16-compile --precision bf16 --compile --epochs 3
start=$SECONDS
if timeout 150 python -m vaelab evaluate "$OUT/default" --device cuda --k 1000 --no-fid \
        > "$OUT/eval.log" 2>&1; then
    nll=$(python -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"NLL {r['nll']:.2f} +- {r['nll_stderr']:.2f}\")" "$OUT/default/eval.json")
    printf 'evaluate --k 1000\t-\t-\t-\t%s\t-\t%s\n' $((SECONDS - start)) "$nll" >> "$RESULTS"
else
    printf 'evaluate --k 1000\t-\t-\t-\t-\t-\tfailed: %s\n' "$(tail -1 "$OUT/eval.log")" >> "$RESULTS"
fi
if [ "$(python -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
    start=$SECONDS
    if timeout 180 torchrun --standalone --nproc-per-node 2 -m vaelab train --device cuda \
            --no-progress --epochs 3 --batch-size 256 --out "$OUT/ddp" > "$OUT/ddp.log" 2>&1; then
        cp "$OUT/ddp.log" "$OUT/ddp/log.txt"
        row "ddp-2gpu" $((SECONDS - start)) "$OUT/ddp"
    else
        printf 'ddp-2gpu\t-\t-\t-\t-\t-\tfailed: %s\n' "$(tail -1 "$OUT/ddp.log")" >> "$RESULTS"
    fi
else
    printf 'ddp-2gpu\t-\t-\t-\t-\t-\tskipped: one GPU\n' >> "$RESULTS"
fi
echo
echo "| row | precision | img/s | epochs | wall s | test -ELBO | notes |"
echo "|---|---|---:|---:|---:|---:|---|"
awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7}' "$RESULTS"
echo "(logs and runs in $OUT)"
