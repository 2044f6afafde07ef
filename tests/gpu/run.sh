#!/usr/bin/env bash
# Runs ON the GPU machine, from the repository root, after tests/gpu/pack.sh made .gpu-pack here:
# the NCCL ABI conformance check against the machine's nccl.h headers, the GPU tests and the
# benchmark (tests/gpu/gpu_suite.py). Results go to OUT (first argument).
set -uo pipefail
out="${1:-/tmp/splitd-gpu}"
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
pack="$(pwd)/.gpu-pack"

nvidia-smi -L
nvidia-smi topo -m || true

# PyTorch's own NCCL (the one its split_group and new_group use) and CUDA runtime.
site="$(python3 -c 'import nvidia, os; print(list(nvidia.__path__)[0])')"
torch_nccl="$(ls "$site"/nccl/lib/libnccl.so.2 2>/dev/null | head -n 1)"
echo "PyTorch's NCCL: ${torch_nccl:-none}; system NCCL: $(ls /usr/lib/x86_64-linux-gnu/libnccl.so.2 2>/dev/null)"

echo "== NCCL ABI conformance"
abi_status=0
for include in /usr/include "$site/nccl/include"; do
  [ -f "$include/nccl.h" ] || continue
  if g++ -std=c++17 -Wall -Wextra -I. -I"$include" -I/usr/local/cuda/include \
      worker/nccl/nccl_abi_check_test.cc -o /tmp/nccl_abi_check 2> /tmp/abi.err; then
    /tmp/nccl_abi_check || abi_status=1
  else
    echo "ABI check FAILED to compile against $include/nccl.h"; cat /tmp/abi.err; abi_status=1
  fi
done

echo "== GPU tests and benchmark"
python3 tests/gpu/gpu_suite.py --pack "$pack" --out "$out" ${SUITE_ARGS:---tests --bench --runs 3} \
  --agent_flag="--nccl_library=${torch_nccl:-libnccl.so.2}" 2>&1 | tee "$out/gpu_suite.log"
suite_status=${PIPESTATUS[0]}
echo "abi_status=$abi_status suite_status=$suite_status"
exit $(( abi_status | suite_status ))
