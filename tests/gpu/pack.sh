#!/usr/bin/env bash
# Builds splitd, splitd-agent and splitctl here (-c opt) and packs them, with the shared libraries
# they need and the PyTorch reference program into .gpu-pack/ (git-ignored) for a GPU machine that has no gRPC
# (keeping .gpu-pack/shrink, which tests/gpu/pack_shrink.sh makes):
#
#   BAZEL_OUTPUT_BASE=/tmp/some_base tests/gpu/pack.sh   # output base optional
#   # then, on the GPU machine, from the repository root, with .gpu-pack carried along:
#   bash tests/gpu/run.sh "$OUT"            # ABI check, GPU tests, benchmark
#
# glibc itself is not packed: the GPU machine's is newer and compatible.
set -euo pipefail
cd "$(dirname "$0")/../.."

scripts/setup.sh
startup=()
[ -n "${BAZEL_OUTPUT_BASE:-}" ] && startup=(--output_base="$BAZEL_OUTPUT_BASE")
bazel "${startup[@]}" build --symlink_prefix=/ -c opt //daemon:splitd //worker:splitd-agent \
  //client:splitctl 2>&1 | tail -n 1
bin="$(bazel "${startup[@]}" info --symlink_prefix=/ -c opt bazel-bin 2>/dev/null)"

pack=.gpu-pack
rm -rf "$pack/bin" "$pack/lib" "$pack/bench"
mkdir -p "$pack/bin" "$pack/lib" "$pack/bench"
cp "$bin/daemon/splitd" "$bin/worker/splitd-agent" "$bin/client/splitctl" "$pack/bin/"
for binary in "$pack"/bin/*; do
  ldd "$binary" | awk '/=> \// {print $3}'
done | sort -u | while read -r library; do
  case "$(basename "$library")" in
    libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|ld-linux*|libresolv.so.*) ;;
    *) cp -L "$library" "$pack/lib/" ;;
  esac
done
cp ../shared/bench/torch_groups_bench.py "$pack/bench/"
du -sh "$pack"
