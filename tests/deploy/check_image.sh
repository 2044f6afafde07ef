#!/usr/bin/env bash
# CI check of the runtime image: builds splitd, splitd-agent and splitctl (bazel -c opt),
# assembles the image with the copy-only deploy/image/build.sh (podman build, FROM scratch: no
# container has to run), exports the image's filesystem (podman create + podman export) and runs
# every binary's --version inside it (deploy/image/check-rootfs.sh). Podman uses a private,
# temporary store (vfs driver), so nothing is left behind.
# Prints "ok <check>" / "FAILED <check>: <why>" lines and exits non-zero when any failed.
# Environment: BAZEL (default "bazel"), BAZEL_FLAGS (default "-c opt"); SPLITD_IMAGE_BIN_DIR, a
# folder with the three binaries already built, skips the Bazel build.
set -uo pipefail
cd "$(dirname "$0")/../.."

failed=0
fail() { echo "FAILED $1: $2"; failed=1; }

if ! command -v podman >/dev/null; then
  fail image-build "podman is not installed (scripts/setup.sh installs it)"
  exit 1
fi

work=$(mktemp -d)
podman=(podman --root "$work/storage" --runroot "$work/run" --storage-driver vfs
        --cgroup-manager cgroupfs --events-backend file)
tag=localhost/splitd:ci-check
cleanup() {
  "${podman[@]}" rm -a -f >/dev/null 2>&1
  "${podman[@]}" rmi -a -f >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

build_args=(--tag "$tag")
[ -z "${SPLITD_IMAGE_BIN_DIR:-}" ] || build_args+=(--bin_dir "$SPLITD_IMAGE_BIN_DIR")
if PODMAN="${podman[*]}" deploy/image/build.sh "${build_args[@]}" > "$work/build.log" 2>&1; then
  echo "ok image-build ($tag from scratch, copy-only)"
else
  fail image-build "deploy/image/build.sh failed; its last lines:"
  tail -20 "$work/build.log" | sed 's/^/    /'   # indented: only this script's lines count
  exit 1
fi

config=$("${podman[@]}" image inspect "$tag" \
  --format '{{.Config.User}} {{json .Config.Entrypoint}}' 2>&1)
if [ "$config" = '65532:65532 ["/usr/local/bin/splitd"]' ]; then
  echo "ok image-config (user 65532:65532, entrypoint splitd)"
else
  fail image-config "expected user 65532:65532 and entrypoint [\"/usr/local/bin/splitd\"], got: $config"
fi

mkdir -p "$work/rootfs"
if container=$("${podman[@]}" create "$tag" 2>"$work/create.log") &&
   "${podman[@]}" export "$container" | tar -C "$work/rootfs" -x; then
  owner=$(stat -c %u:%g "$work/rootfs/var/lib/splitd" 2>&1)
  if [ "$owner" = 65532:65532 ]; then
    echo "ok image-data-dir (/var/lib/splitd belongs to 65532:65532)"
  else
    fail image-data-dir "/var/lib/splitd belongs to $owner, not 65532:65532"
  fi
  deploy/image/check-rootfs.sh "$work/rootfs" || failed=1
else
  fail image-export "podman create/export failed: $(cat "$work/create.log")"
fi
exit "$failed"
