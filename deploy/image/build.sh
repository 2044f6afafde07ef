#!/usr/bin/env bash
# Builds the splitd runtime image from binaries built outside any container, with a copy-only
# Containerfile (deploy/image/Containerfile), so it works where containers cannot run.
# Usage: deploy/image/build.sh [--tag NAME] [--base IMAGE] [--bin_dir DIR] [--context DIR]
#   --tag      image name (default localhost/splitd:<version from common/version.h>)
#   --base     base image (default scratch)
#   --bin_dir  folder with splitd, splitd-agent and splitctl (default: build them with
#              `bazel build -c opt` and take them from bazel-bin)
#   --context  keep the build context (rootfs/ and rootfs.tar) in DIR instead of a temp folder
# Environment: PODMAN (default "podman"; e.g. "podman --storage-driver=vfs"), BAZEL (default
# "bazel"), BAZEL_FLAGS (default "-c opt").
set -euo pipefail
cd "$(dirname "$0")/../.."

version=$(sed -n 's/.*kVersion\[\] = "\([^"]*\)".*/\1/p' common/version.h)
tag="localhost/splitd:${version:-dev}"
base=scratch
bin_dir=
context=
while [ "$#" -gt 0 ]; do
  case "$1" in
    --tag) tag=$2; shift 2 ;;
    --base) base=$2; shift 2 ;;
    --bin_dir) bin_dir=$2; shift 2 ;;
    --context) context=$2; shift 2 ;;
    *) echo "usage: $0 [--tag NAME] [--base IMAGE] [--bin_dir DIR] [--context DIR]" >&2; exit 2 ;;
  esac
done
read -r -a podman <<< "${PODMAN:-podman}"
read -r -a bazel <<< "${BAZEL:-bazel}"
read -r -a bazel_flags <<< "${BAZEL_FLAGS:--c opt}"

targets=(//daemon:splitd //worker:splitd-agent //client:splitctl)
if [ -z "$bin_dir" ]; then
  "${bazel[@]}" build "${bazel_flags[@]}" "${targets[@]}"
  bin_root=$("${bazel[@]}" info "${bazel_flags[@]}" bazel-bin)
  binaries=("$bin_root/daemon/splitd" "$bin_root/worker/splitd-agent" "$bin_root/client/splitctl")
else
  binaries=("$bin_dir/splitd" "$bin_dir/splitd-agent" "$bin_dir/splitctl")
fi

if [ -z "$context" ]; then
  context=$(mktemp -d)
  trap 'rm -rf "$context"' EXIT
fi
rm -rf "$context/rootfs" "$context/rootfs.tar"
mkdir -p "$context"
deploy/image/collect-rootfs.sh "$context/rootfs" "${binaries[@]}"
# A tar keeps ownership (/var/lib/splitd belongs to 65532) and symlinks exactly; ADD unpacks it.
tar -C "$context/rootfs" --numeric-owner --sort=name -cf "$context/rootfs.tar" .
cp deploy/image/Containerfile "$context/Containerfile"
"${podman[@]}" build --build-arg "BASE=$base" -t "$tag" -f "$context/Containerfile" \
  "$context"
echo "built $tag"
