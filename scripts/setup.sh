#!/usr/bin/env bash
# Installs what building, testing and running splitd needs on Debian bookworm. Safe to run again:
# it only asks apt for packages that are missing.
set -euo pipefail

packages=(
  bazel-bootstrap g++ pkg-config python3
  protobuf-compiler protobuf-compiler-grpc libprotobuf-dev libgrpc++-dev grpc-proto
  libabsl-dev libspdlog-dev libfmt-dev libyaml-cpp-dev nlohmann-json3-dev libssl-dev
  libgtest-dev libgmock-dev libgloo-dev zlib1g-dev clang
  clang-format  # scripts/checks.sh: every C++ file is formatted by .clang-format
  git  # scripts/checks.sh lists the tracked files
  openssl  # tests/e2e/tls_e2e_test makes its certificates with the openssl binary
  libcpp-httplib-dev  # the daemon's /metrics endpoint (--metrics_listen)
  libmicrohttpd-dev  # the agent's workload endpoint on a Unix socket (--workload_socket)
  prometheus  # tests/e2e/metrics_e2e_test scrapes the daemon with the real Prometheus server
  iproute2 iptables  # tests/python/multihost_test: hosts as network namespaces, partitions
  etcd-server  # daemon replicas (--etcd_endpoints): their store and election tests run real etcd
)
# Deployment checks (tests/deploy): podman builds the copy-only image; python3-kubernetes holds
# the Kubernetes API models the manifests are validated against (kubectl renders them).
packages+=(podman python3-kubernetes)
# Workload tests (tests/python): PyTorch 1.13 (CPU, Gloo) for the integration test; about 290
# packages, 200 MB to download, 870 MB installed on top of the above.
packages+=(python3-torch)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
[ "${#missing[@]}" -eq 0 ] && exit 0

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "setup: installing ${missing[*]}" >&2
"${sudo[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
