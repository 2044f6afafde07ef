#!/usr/bin/env bash
# Runs the Python tests of client/python/splitd_groups (every *_test.py here): the standard-library
# ones (plan_test, torch_groups_test, workload_plan_test) and those with the real splitd,
# splitd-agents and PyTorch processes over Gloo (endpoint_test, workload_test, integration_test;
# workload_gpu_test where torch sees a GPU), multihost_test and campaign_test: agents on hosts of
# their own (network namespaces, tests/netns/bed.py; as root), and replicas_test: daemon replicas
# over a real etcd (/usr/bin/etcd, Debian's etcd-server).
# Prints one line per test case and, last, "N passed, M failed, K skipped"; exit code 0 when
# nothing failed.
#   SPLITD_BIN     a bazel-bin holding daemon/splitd, worker/splitd-agent and client/splitctl;
#                  when unset they are built with `bazel build $SPLITD_BAZEL_FLAGS`
#   SPLITD_PYTHON  an interpreter with torch (default /usr/bin/python3: Debian's python3-torch)
# Usage: tests/python/run.sh [test module names, default every *_test.py]
set -uo pipefail
cd "$(dirname "$0")/../.."

python="${SPLITD_PYTHON:-/usr/bin/python3}"
if [ -z "${SPLITD_BIN:-}" ]; then
  # shellcheck disable=SC2086  # SPLITD_BAZEL_FLAGS holds several flags
  if ! bazel build ${SPLITD_BAZEL_FLAGS:-} //daemon:splitd //worker:splitd-agent \
      //client:splitctl >&2; then
    echo "FAILED tests/python: building splitd, splitd-agent and splitctl"
    echo "0 passed, 1 failed, 0 skipped"
    exit 1
  fi
  # shellcheck disable=SC2086
  SPLITD_BIN="$(bazel info ${SPLITD_BAZEL_FLAGS:-} bazel-bin 2>/dev/null)"
fi
export SPLITD_BIN
exec "$python" tests/python/run_tests.py "$@"
