#!/usr/bin/env bash
# Runs ON the GPU machine, from the repository root, with .gpu-pack (tests/gpu/pack.sh) carried:
# the workload in the loop on PyTorch's NCCL. One daemon, one agent per GPU with its workload
# socket, and one PyTorch process per GPU (tests/python/workload_worker.py) that reads its plan
# from the socket, starts a device-bound world with splitd_groups.init_world (the daemon's store:
# no MASTER_ADDR, no TCPStore), creates the plan's groups (split_group for cuda:nccl kinds),
# validates and reports them. The topology asks for `readiness: workload` and `preflight: false`:
# the cluster is READY only once every workload reported its groups validated, and the agents
# form no communicators of their own. Results go to OUT (first argument); exit 0 when the
# cluster is READY with every rank's workload READY and every all-reduce value right.
set -uo pipefail
out="${1:-/tmp/splitd-workload-store}"
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
pack="$(pwd)/.gpu-pack"
export LD_LIBRARY_PATH="$pack/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
site="$(python3 -c 'import nvidia, os; print(list(nvidia.__path__)[0])')"
torch_nccl="$(ls "$site"/nccl/lib/libnccl.so.2 2>/dev/null | head -n 1)"
python3 -c 'import torch, torch.distributed as d; print("torch", torch.__version__, "split_group:", hasattr(d, "split_group"), "gpus:", torch.cuda.device_count())'

world=${WORLD:-$(python3 -c 'import torch; print(min(torch.cuda.device_count(), 4))')}
work="$(mktemp -d /tmp/splitd-ws-XXXXXX)"
"$pack/bin/splitd" --listen 127.0.0.1:0 --port_file "$work/port" 2> "$out/splitd.log" & daemon=$!
until [ -s "$work/port" ]; do sleep 0.1; done
addr="$(cat "$work/port")"
tp=$(( world >= 2 ? 2 : 1 )); dp=$(( world / tp ))
printf '%s\n' 'cluster: gpu' "dims: [{name: tp, size: $tp}, {name: dp, size: $dp}]" \
  'backend: "cuda:nccl"' 'readiness: workload' 'preflight: false' \
  'groups: [{name: tp, dims: [tp]}, {name: dp, dims: [dp]}, {name: all, dims: [tp, dp]}]' |
  "$pack/bin/splitctl" --addr "$addr" apply -f -
agents=(); workers=()
start=$(date +%s%N)
for ((i = 0; i < world; i++)); do
  "$pack/bin/splitd-agent" --daemon "$addr" --cluster gpu --node n0 --local_index "$i" \
    --pod "agent-$i" --plan_file "$work/plan-$i.json" --nccl_library="${torch_nccl:-libnccl.so.2}" \
    2> "$out/agent-$i.log" & agents+=($!)
  python3 tests/python/workload_worker.py --plan_file "$work/plan-$i.json" \
    --out "$out/out-$i.jsonl" --backend nccl --device cuda --local_index "$i" \
    2> "$out/worker-$i.log" & workers+=($!)
done
status=0
for pid in "${workers[@]}"; do wait "$pid" || status=1; done
echo "workers done in $(( ($(date +%s%N) - start) / 1000000 )) ms (exit status $status)"
"$pack/bin/splitctl" --addr "$addr" status gpu -o json > "$out/status.json"
"$pack/bin/splitctl" --addr "$addr" status gpu | head -n 20
python3 - "$out/status.json" "$world" <<'PY' || status=1
import json, sys
status, world = json.load(open(sys.argv[1])), int(sys.argv[2])
problems = []
if status["state"] != "READY":
    problems.append(f"cluster is {status['state']}, not READY")
members = [m for m in status["members"] if m["rank"] >= 0]
if len(members) != world:
    problems.append(f"{len(members)} ranked members, expected {world}")
for m in members:
    w = m.get("workload") or {}
    if w.get("phase") != "READY":
        problems.append(f"rank {m['rank']}: workload {w.get('phase')}")
    kinds = {g["kind"]: g for g in w.get("groups", [])}
    if set(kinds) != {"tp", "dp", "all"}:
        problems.append(f"rank {m['rank']}: validated kinds {sorted(kinds)}")
print("workload check:", "ok" if not problems else "; ".join(problems))
sys.exit(1 if problems else 0)
PY
for ((i = 0; i < world; i++)); do
  echo "== rank $i"; cat "$out/out-$i.jsonl" 2>/dev/null
  grep -h -E 'split_group|new_group|creat' "$out/worker-$i.log" | head -n 5
done
kill "${agents[@]}" "$daemon" 2>/dev/null
wait 2>/dev/null
exit $status
