#!/usr/bin/env bash
# Lays out the runtime filesystem of the splitd image in ROOT: the given binaries in
# /usr/local/bin, every shared library they load (as ldd resolves them on this machine) and the
# dynamic loader, a passwd/group with the unprivileged user splitd (65532:65532), and writable
# /tmp, /var/lib/splitd and /run/splitd. Nothing else: no shell, no package manager.
# Usage: deploy/image/collect-rootfs.sh ROOT BINARY...
# NCCL and the CUDA runtime are dlopen'ed at run time and are not copied (docs/deploying.md).
set -euo pipefail

if [ "$#" -lt 2 ]; then
  echo "usage: $0 ROOT BINARY..." >&2
  exit 2
fi
root=$1
shift
mkdir -p "$root"
root=$(cd "$root" && pwd)

# Keep the machine's merged-/usr layout (/lib -> usr/lib, /lib64 -> usr/lib64 on bookworm), so
# the loader path written in every binary (PT_INTERP) and the loader's default search
# directories resolve inside the image as they do here.
for top in lib lib64; do
  if [ -L "/$top" ] && [ ! -e "$root/$top" ]; then
    ln -s "$(readlink "/$top")" "$root/$top"
  fi
done

# copy_file SOURCE: copies SOURCE's contents (symlinks followed) to the same path under ROOT,
# with its directory resolved the way this machine resolves it.
copy_file() {
  local source=$1 dir
  dir=$(readlink -f "$(dirname "$source")")
  mkdir -p "$root$dir"
  cp -L --preserve=mode "$source" "$root$dir/$(basename "$source")"
}

mkdir -p "$root/usr/local/bin"
for binary in "$@"; do
  [ -x "$binary" ] || { echo "collect-rootfs: $binary is not an executable file" >&2; exit 1; }
  install -m 0755 "$binary" "$root/usr/local/bin/$(basename "$binary")"
  # ldd lines: "libx.so.1 => /path/libx.so.1 (0x...)", "/lib64/ld-linux-x86-64.so.2 (0x...)",
  # "linux-vdso.so.1 (0x...)" (in the kernel, nothing to copy), or "libx.so.1 => not found".
  ldd_out=$(ldd "$binary")
  if grep -q 'not found' <<< "$ldd_out"; then
    echo "collect-rootfs: $binary needs libraries this machine lacks:" >&2
    grep 'not found' <<< "$ldd_out" >&2
    exit 1
  fi
  while read -r path; do
    copy_file "$path"
  done < <(awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<< "$ldd_out")
done

mkdir -p "$root/etc" "$root/var/lib/splitd" "$root/run/splitd" "$root/tmp"
chmod 1777 "$root/tmp"
cat > "$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
splitd:x:65532:65532:splitd:/var/lib/splitd:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
cat > "$root/etc/group" <<'GROUP'
root:x:0:
splitd:x:65532:
nogroup:x:65534:
GROUP
# glibc 2.34+ has the files and dns lookups built in; gRPC resolves names with c-ares, which
# reads /etc/resolv.conf and /etc/hosts (a container runtime or Kubernetes mounts both).
cat > "$root/etc/nsswitch.conf" <<'NSS'
passwd: files
group: files
hosts: files dns
NSS
if [ "$(id -u)" -eq 0 ]; then
  chown 65532:65532 "$root/var/lib/splitd" "$root/run/splitd"
fi
