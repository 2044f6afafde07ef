#!/usr/bin/env bash
# Checks that an image filesystem (a folder, e.g. from `podman export`) holds runnable splitd
# binaries: each one's libraries must all resolve inside ROOT (with the image's own loader, the
# machine's ld.so.cache ignored), and `--version` must print the expected line, run inside ROOT
# with chroot when root, else through ROOT's loader with ROOT's library folders.
# Prints "ok <check>" or "FAILED <check>: <why>" per check; exits 1 when any failed.
# Usage: deploy/image/check-rootfs.sh ROOT [BINARY...]   (default: splitd splitd-agent splitctl)
set -uo pipefail

root=${1:?usage: $0 ROOT [BINARY...]}
root=$(cd "$root" && pwd) || exit 1
shift
binaries=("$@")
[ "${#binaries[@]}" -gt 0 ] || binaries=(splitd splitd-agent splitctl)

loader="$root/lib64/ld-linux-x86-64.so.2"
library_path="$root/lib/x86_64-linux-gnu:$root/usr/lib/x86_64-linux-gnu:$root/lib:$root/usr/lib"
failed=0
fail() { echo "FAILED $1: $2"; failed=1; }

for name in "${binaries[@]}"; do
  binary="$root/usr/local/bin/$name"
  if [ ! -x "$binary" ]; then
    fail "image-has-$name" "no executable /usr/local/bin/$name in the image"
    continue
  fi
  if [ ! -e "$loader" ]; then
    fail "image-libraries-$name" "no dynamic loader /lib64/ld-linux-x86-64.so.2 in the image"
    continue
  fi
  # Every library must come from ROOT: a path outside it means the image lacks that library.
  listing=$("$loader" --inhibit-cache --library-path "$library_path" --list "$binary" 2>&1)
  list_rc=$?
  outside=$(awk -v root="$root" '$2 == "=>" && index($3, root "/") != 1 {print}' <<< "$listing")
  if [ "$list_rc" -ne 0 ] || [ -n "$outside" ] || grep -q 'not found' <<< "$listing"; then
    fail "image-libraries-$name" "libraries missing from the image: ${outside:-$listing}"
    continue
  fi
  if [ "$(id -u)" -eq 0 ] && command -v chroot >/dev/null; then
    how=chroot
    version=$(chroot "$root" "/usr/local/bin/$name" --version 2>&1)
  else
    how=loader
    version=$("$loader" --inhibit-cache --library-path "$library_path" "$binary" --version 2>&1)
  fi
  rc=$?
  if [ "$rc" -ne 0 ] || ! grep -q "^$name [0-9]" <<< "$version"; then
    fail "image-runs-$name" "--version ($how) exited $rc: $version"
    continue
  fi
  echo "ok image-runs-$name ($how): $(head -1 <<< "$version")"
done
exit "$failed"
