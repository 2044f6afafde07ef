#!/usr/bin/env bash
# Runs ON the GPU machine, from the repository root, with .gpu-pack (tests/gpu/pack.sh) carried:
# the workload side (client/python/splitd_groups) on PyTorch's NCCL. One daemon, one agent per
# GPU and one PyTorch process per GPU (tests/python/torch_worker.py, device-bound world) that
# reads its agent's plan file and creates the plan's groups with `auto` (split_group for
# cuda:nccl kinds when the world is device-bound), all-reduces in each and records the results.
# Results go to OUT (first argument); exit 0 when every process formed every group correctly.
set -uo pipefail
out="${1:-/tmp/splitd-workload}"
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
pack="$(pwd)/.gpu-pack"
export LD_LIBRARY_PATH="$pack/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
site="$(python3 -c 'import nvidia, os; print(list(nvidia.__path__)[0])')"
torch_nccl="$(ls "$site"/nccl/lib/libnccl.so.2 2>/dev/null | head -n 1)"
python3 -c 'import torch, torch.distributed as d; print("torch", torch.__version__, "split_group:", hasattr(d, "split_group"), "gpus:", torch.cuda.device_count())'

world=${WORLD:-4}
work="$(mktemp -d)"
"$pack/bin/splitd" --listen 127.0.0.1:0 --port_file "$work/port" 2> "$out/splitd.log" & daemon=$!
until [ -s "$work/port" ]; do sleep 0.1; done
addr="$(cat "$work/port")"
tp=$(( world >= 2 ? 2 : 1 )); dp=$(( world / tp ))  # WORLD 1, 2 or 4 (one GPU each)
printf '%s\n' 'cluster: gpu' "dims: [{name: tp, size: $tp}, {name: dp, size: $dp}]" \
  'backend: "cuda:nccl"' \
  'groups: [{name: tp, dims: [tp]}, {name: dp, dims: [dp]}, {name: all, dims: [tp, dp]}]' |
  "$pack/bin/splitctl" --addr "$addr" apply -f -
agents=(); workers=()
start=$(date +%s%N)
for ((i = 0; i < world; i++)); do
  "$pack/bin/splitd-agent" --daemon "$addr" --cluster gpu --node n0 --local_index "$i" \
    --pod "agent-$i" --plan_file "$work/plan-$i.json" --nccl_library="${torch_nccl:-libnccl.so.2}" \
    2> "$out/agent-$i.log" & agents+=($!)
  python3 tests/python/torch_worker.py --plan_file "$work/plan-$i.json" --store_dir "$work" \
    --out "$out/out-$i.jsonl" --world_backend nccl --device cuda --local_index "$i" \
    --log_level INFO 2> "$out/worker-$i.log" & workers+=($!)
done
status=0
for pid in "${workers[@]}"; do wait "$pid" || status=1; done
echo "workers done in $(( ($(date +%s%N) - start) / 1000000 )) ms (exit status $status)"
"$pack/bin/splitctl" --addr "$addr" status gpu | head -n 8
for ((i = 0; i < world; i++)); do
  echo "== rank file $i"; cat "$out/out-$i.jsonl" 2>/dev/null
  grep -h -E 'split_group|new_group' "$out/worker-$i.log" | head -n 5
done
kill "${agents[@]}" "$daemon" 2>/dev/null
wait 2>/dev/null
exit $status
