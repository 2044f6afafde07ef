#!/usr/bin/env bash
# Runs ON a machine with 4 GPUs (WORLD=2: 2 GPUs), from the repository root, after tests/gpu/pack_shrink.sh made
# .gpu-pack/shrink here: the NCCL ABI conformance check, then nccl_shrink_bench against
# PyTorch's NCCL (else the system's). Output goes to OUT (first argument) and stdout.
set -uo pipefail
out="${1:-/tmp/splitd-shrink}"
reps="${REPS:-5}"
world="${WORLD:-4}"
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
pack="$(pwd)/.gpu-pack/shrink"

nvidia-smi -L
site="$(python3 -c 'import nvidia, os; print(list(nvidia.__path__)[0])' 2>/dev/null)"
torch_nccl="$(ls "$site"/nccl/lib/libnccl.so.2 2>/dev/null | head -n 1)"
nccl="${torch_nccl:-libnccl.so.2}"

echo "== NCCL ABI conformance"
abi_status=0
for include in /usr/include "$site/nccl/include"; do
  [ -f "$include/nccl.h" ] || continue
  if g++ -std=c++17 -Wall -Wextra -Werror -I. -I"$include" -isystem /usr/local/cuda/include \
      worker/nccl/nccl_abi_check_test.cc -o /tmp/nccl_abi_check 2> /tmp/abi.err; then
    /tmp/nccl_abi_check || abi_status=1
  else
    echo "ABI check FAILED to compile against $include/nccl.h"; cat /tmp/abi.err; abi_status=1
  fi
done

echo "== nccl_shrink_bench ($nccl, $reps repetitions + 1 with a killed peer)"
export LD_LIBRARY_PATH="$pack/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
bench_status=0
# SHRINK_MODES: "abort" (NCCL_SHRINK_ABORT, what the agent uses) and/or "default".
for mode in ${SHRINK_MODES:-abort}; do
  # NCCL_SHRINK_DEFAULT is not meant for a dead peer: no repetition with a killed rank there.
  abort=true kill=true; [ "$mode" = default ] && abort=false kill=false
  cmd=("$pack/bin/nccl_shrink_bench" --nccl_library="$nccl" --world="$world" --reps="$reps"
       --shrink_with_abort="$abort" --kill_peer="$kill" --dir=/tmp/shrink-bench ${BENCH_FLAGS:-})
  echo "${cmd[*]}"
  timeout 150 "${cmd[@]}" > "$out/nccl_shrink_bench-$mode.log" 2>&1
  status=$?
  grep -v "^\[" "$out/nccl_shrink_bench-$mode.log" | tail -n 8
  grep -h "shrank the world" "$out/nccl_shrink_bench-$mode.log" | head -n 3
  tail -n 1 "$out/nccl_shrink_bench-$mode.log" > "$out/nccl_shrink_bench-$mode.json"
  [ $status -eq 0 ] || bench_status=$status
done
echo "abi_status=$abi_status bench_status=$bench_status"
exit $(( abi_status | bench_status ))
