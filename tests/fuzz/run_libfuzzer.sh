#!/usr/bin/env bash
# Builds the fuzz targets with clang's libFuzzer (and ASan/UBSan) in a Bazel output base of their
# own, then fuzzes each for SECONDS (default 10), starting from its corpus in tests/fuzz/corpus.
# Prints "fuzz NAME: ok (N runs)" or "fuzz NAME: FAILED" per target; exits non-zero on a finding.
#   tests/fuzz/run_libfuzzer.sh [SECONDS]
set -uo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-10}"
targets=(topology_fuzzer store_fuzzer agent_request_fuzzer rpc_fuzzer)

command -v clang >/dev/null || { echo "fuzz: clang is not installed (scripts/setup.sh)"; exit 1; }
output_base="${SPLITD_FUZZ_OUTPUT_BASE:-$HOME/.cache/splitd-fuzz-bazel}"
labels=()
for target in "${targets[@]}"; do labels+=("//tests/fuzz:$target"); done
if ! CC=clang bazel --output_base="$output_base" build --symlink_prefix=/ --config=libfuzzer \
    "${labels[@]}" \
    > /tmp/splitd-fuzz-build.log 2>&1; then
  tail -n 30 /tmp/splitd-fuzz-build.log
  echo "fuzz: build FAILED"
  exit 1
fi
bin="$(CC=clang bazel --output_base="$output_base" info --config=libfuzzer bazel-bin 2>/dev/null)"

status=0
work="$(mktemp -d)"
for target in "${targets[@]}"; do
  corpus="$work/$target"
  mkdir -p "$corpus"
  cp tests/fuzz/corpus/"${target%_fuzzer}"/* "$corpus/" 2>/dev/null || true
  [ "$target" = agent_request_fuzzer ] && cp tests/fuzz/corpus/agent/* "$corpus/"
  log="$work/$target.log"
  if ASAN_OPTIONS=detect_leaks=0 "$bin/tests/fuzz/$target" -max_total_time="$seconds" \
      -max_len=65536 -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$work/$target-" \
      "$corpus" > "$log" 2>&1; then
    runs="$(grep -o 'Done [0-9]* runs' "$log" | tail -n 1)"
    echo "fuzz $target: ok (${runs:-no summary}, corpus $(ls "$corpus" | wc -l))"
  else
    echo "fuzz $target: FAILED"
    tail -n 40 "$log"
    ls "$work"/"$target"-* 2>/dev/null
    status=1
  fi
done
exit "$status"
