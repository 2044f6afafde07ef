#!/usr/bin/env bash
# CI check of the Kubernetes manifests: renders deploy/k8s/base and every overlay under
# deploy/k8s/overlays with `kubectl kustomize` (offline), validates every rendered object with
# tests/deploy/check_manifests.py (the Kubernetes API models of Debian's python3-kubernetes, plus
# cross-object checks), and breaks the example overlay in known ways to show the check refuses
# them. Prints "ok <check>" / "FAILED <check>: <why>" lines; exits non-zero when any failed.
set -uo pipefail
cd "$(dirname "$0")/../.."

failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! kubectl version --client >/dev/null 2>&1; then
  echo "FAILED manifests-render: no kubectl (kubectl >= 1.21 renders kustomize v4+ overlays;" \
       "Debian bookworm's kubernetes-client 1.20 is too old for them)"
  exit 1
fi
echo "renderer: $(kubectl version --client 2>/dev/null | tr '\n' ' ')"

rendered=()
for dir in deploy/k8s/base deploy/k8s/overlays/*/; do
  dir=${dir%/}
  out="$work/$(tr / _ <<< "$dir").yaml"
  if kubectl kustomize "$dir" > "$out" 2> "$work/render.err"; then
    echo "ok manifests-render $dir"
    rendered+=("$out")
  else
    echo "FAILED manifests-render $dir: $(cat "$work/render.err")"
    failed=1
  fi
done
[ "${#rendered[@]}" -gt 0 ] || exit 1

/usr/bin/python3 tests/deploy/check_manifests.py "${rendered[@]}" || failed=1
example="$work/deploy_k8s_overlays_example.yaml"
if [ -f "$example" ]; then
  /usr/bin/python3 tests/deploy/check_manifests.py --self-test "$example" || failed=1
fi
exit "$failed"
