#!/usr/bin/env bash
# The splitd demo: starts the daemon on a free local port, applies an 8-rank topology
# (deploy/examples/demo.yaml: TP2 x PP2 x DP2 over Gloo), starts 8 local agents, waits until
# every group is formed and validated, prints the status table, then stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "== building splitd, splitd-agent and splitctl" >&2
bazel build -c opt //daemon:splitd //worker:splitd-agent //client:splitctl 2>&1 | tail -n 1 >&2
bin="$(bazel info -c opt bazel-bin 2>/dev/null)"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/daemon/splitd" --listen 127.0.0.1:0 --port_file "$work/port" --data_dir "$work/data" \
  2> "$work/splitd.log" &
daemon_pid=$!
pids+=("$daemon_pid")
for _ in $(seq 1 100); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || { cat "$work/splitd.log" >&2; echo "splitd did not start" >&2; exit 1; }
addr="$(cat "$work/port")"
splitctl() { "$bin/client/splitctl" --addr "$addr" "$@"; }

echo "== splitd serving on $addr"
echo; echo "\$ splitctl apply -f deploy/examples/demo.yaml"
splitctl apply -f deploy/examples/demo.yaml

echo; echo "== starting 8 agents (2 nodes x 4 local indices)"
for rank in $(seq 0 7); do
  node=$((rank / 4)); index=$((rank % 4))
  "$bin/worker/splitd-agent" --daemon "$addr" --cluster demo --node "node-$node" \
    --local_index "$index" --pod "agent-$rank" --host 127.0.0.1 \
    --plan_file "$work/plan-$rank.json" 2> "$work/agent-$rank.log" &
  pids+=("$!")
done

echo; echo "\$ splitctl status demo --watch   (until READY)"
if ! splitctl status demo --watch --interval 0.2s --watch_timeout 120s > "$work/watch.log"; then
  cat "$work/watch.log"
  echo "== the cluster did not reach READY; agent logs:" >&2
  tail -n 5 "$work"/agent-*.log >&2
  exit 1
fi

echo; echo "\$ splitctl status demo"
splitctl status demo
echo; echo "\$ cat plan-5.json   (what agent 5 hands its workload)"
cat "$work/plan-5.json"; echo

echo; echo "== stopping the agents and the daemon"
for pid in "${pids[@]:1}"; do kill -TERM "$pid"; done
for pid in "${pids[@]:1}"; do wait "$pid"; done
kill -TERM "$daemon_pid"; wait "$daemon_pid"
pids=()
echo "== stopped cleanly"
