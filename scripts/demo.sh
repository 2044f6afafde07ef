#!/usr/bin/env bash
# The splitd demo: starts the daemon on a free local port, applies the example topology
# (deploy/examples/llama-serve.yaml), shows the cluster, its plan and its status, then stops.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "== building splitd and splitctl" >&2
bazel build -c opt //daemon:splitd //client:splitctl 2>&1 | tail -n 1 >&2
bin="$(bazel info -c opt bazel-bin 2>/dev/null)"

work="$(mktemp -d)"
daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/daemon/splitd" --listen 127.0.0.1:0 --port_file "$work/port" --data_dir "$work/data" \
  2> "$work/splitd.log" &
daemon_pid=$!
for _ in $(seq 1 100); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || { cat "$work/splitd.log" >&2; echo "splitd did not start" >&2; exit 1; }
addr="$(cat "$work/port")"
splitctl() { "$bin/client/splitctl" --addr "$addr" "$@"; }

echo "== splitd serving on $addr"
echo; echo "\$ splitctl apply -f deploy/examples/llama-serve.yaml"
splitctl apply -f deploy/examples/llama-serve.yaml
echo; echo "\$ splitctl get clusters"
splitctl get clusters
echo; echo "\$ splitctl plan llama-serve"
splitctl plan llama-serve
echo; echo "\$ splitctl plan llama-serve --rank 5 -o json"
splitctl plan llama-serve --rank 5 -o json
echo; echo "\$ splitctl status llama-serve"
splitctl status llama-serve

kill -TERM "$daemon_pid"; wait "$daemon_pid"; daemon_pid=""
echo; echo "== splitd stopped cleanly"
