#!/usr/bin/env bash
# Builds tests/gpu:nccl_shrink_bench here (-c opt) and packs it with the shared libraries it needs
# into .gpu-pack/shrink/ (git-ignored) for a GPU machine:
#
#   BAZEL_OUTPUT_BASE=/tmp/some_base tests/gpu/pack_shrink.sh   # output base optional
#   # then, on the GPU machine, from the repository root, with .gpu-pack/shrink carried along:
#   bash tests/gpu/run_shrink.sh "$OUT"
set -euo pipefail
cd "$(dirname "$0")/../.."

startup=()
[ -n "${BAZEL_OUTPUT_BASE:-}" ] && startup=(--output_base="$BAZEL_OUTPUT_BASE")
bazel "${startup[@]}" build --symlink_prefix=/ -c opt //tests/gpu:nccl_shrink_bench 2>&1 | tail -n 1
bin="$(bazel "${startup[@]}" info -c opt bazel-bin 2>/dev/null)"

pack=.gpu-pack/shrink
rm -rf "$pack"
mkdir -p "$pack/bin" "$pack/lib"
cp "$bin/tests/gpu/nccl_shrink_bench" "$pack/bin/"
ldd "$pack/bin/nccl_shrink_bench" | awk '/=> \// {print $3}' | sort -u | while read -r library; do
  case "$(basename "$library")" in
    libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|ld-linux*|libresolv.so.*) ;;
    *) cp -L "$library" "$pack/lib/" ;;
  esac
done
du -sh "$pack"
