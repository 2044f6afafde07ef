#!/usr/bin/env bash
# Runs every test (unit, gRPC, multi-process end-to-end), once as built normally and once built
# with AddressSanitizer and UndefinedBehaviorSanitizer (--config=sanitize), and ends with
# "N passed, N failed" over both.
# Usage: scripts/test.sh [bazel target patterns, default //...]
# SPLITD_TEST_CONFIGS="plain" skips the sanitizer pass; SPLITD_FUZZ_SECONDS=0 the fuzzers.
# The Python tests (tests/python/run.sh) run once, after the first pass.
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

patterns=("$@")
[ "${#patterns[@]}" -gt 0 ] || patterns=(//...)

targets=$(bazel query "tests(set(${patterns[*]}))" 2>/dev/null)
total_passed=0
total_failed=0
started=$SECONDS
# Seconds since the start, printed after each step: where a run's time goes.
took() { echo "[time] $1 done at $((SECONDS - started)) s"; }
for config in ${SPLITD_TEST_CONFIGS:-plain sanitize}; do
  flags=()
  # The plain pass builds every target; the others only what the tests need (not the fuzzers,
  # load generators and benchmarks, which have builds of their own).
  only=()
  [ "$config" = plain ] || { flags=(--config="$config"); only=(--build_tests_only); }
  echo "== bazel test ${flags[*]} ${only[*]} ${patterns[*]}"
  bazel test --keep_going "${flags[@]}" "${only[@]}" "${patterns[@]}"
  bazel_rc=$?
  # Bazel's own summary counts targets; count test cases from each target's test.xml instead.
  counts=$(python3 - "$bazel_rc" "$config" $targets <<'PY'
import os, sys, xml.etree.ElementTree as ET
bazel_rc, config, targets = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
passed = failed = skipped = 0
for target in targets:
    path = os.path.join("bazel-testlogs", target.lstrip("/").replace(":", "/"), "test.xml")
    try:
        cases = list(ET.parse(path).getroot().iter("testcase"))
    except (OSError, ET.ParseError):
        print(f"FAILED [{config}] {target}: no test results (did not build or crashed)",
              file=sys.stderr)
        failed += 1
        continue
    for case in cases:
        name = f"[{config}] {target} {case.get('classname', '')}.{case.get('name', '')}"
        if case.find("failure") is not None or case.find("error") is not None:
            print(f"FAILED {name}", file=sys.stderr)
            failed += 1
        elif case.get("result") == "skipped" or case.find("skipped") is not None:
            print(f"skipped {name}", file=sys.stderr)
            skipped += 1
        else:
            passed += 1
if bazel_rc != 0 and failed == 0:
    print(f"[{config}] bazel test exited with {bazel_rc}", file=sys.stderr)
    failed = 1
print(f"{passed} {failed} {skipped}")
PY
)
  read -r passed failed skipped <<< "$counts"
  passed=${passed:-0}; failed=${failed:-1}; skipped=${skipped:-0}
  echo "[$config] $passed passed, $failed failed, $skipped skipped"
  took "bazel test [$config]"
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  # The Python workload tests (tests/python/run.sh: splitd_groups with PyTorch over Gloo), once,
  # against the binaries of the first pass; SPLITD_PYTHON_TESTS=0 skips them.
  if [ -z "${python_tests_done:-}" ] && [ "${SPLITD_PYTHON_TESTS:-1}" != 0 ]; then
    python_tests_done=1
    echo "== tests/python/run.sh"
    python_out="$(SPLITD_BAZEL_FLAGS="${flags[*]}" tests/python/run.sh 2>&1)"
    echo "$python_out"
    read -r python_passed python_failed <<< "$(tail -n 1 <<< "$python_out" |
      sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed.*/\1 \2/p')"
    python_passed=${python_passed:-0}; python_failed=${python_failed:-1}
    echo "[python] $python_passed passed, $python_failed failed"
    took "tests/python"
    total_passed=$((total_passed + python_passed))
    total_failed=$((total_failed + python_failed))
  fi
done
# A short libFuzzer run of each fuzz target (SPLITD_FUZZ_SECONDS each, default 10; 0 skips):
# every target counts as one case.
fuzz_seconds="${SPLITD_FUZZ_SECONDS:-10}"
if [ "$fuzz_seconds" -gt 0 ]; then
  echo "== tests/fuzz/run_libfuzzer.sh $fuzz_seconds"
  fuzz_out="$(tests/fuzz/run_libfuzzer.sh "$fuzz_seconds" 2>&1)"
  echo "$fuzz_out"
  fuzz_passed=$(grep -c '^fuzz .*: ok' <<< "$fuzz_out")
  fuzz_failed=$(grep -c 'FAILED' <<< "$fuzz_out")
  [ $((fuzz_passed + fuzz_failed)) -gt 0 ] || fuzz_failed=1
  total_passed=$((total_passed + fuzz_passed))
  total_failed=$((total_failed + fuzz_failed))
fi
took "fuzz"
# The tree's own checks (scripts/checks.sh: formatting, file and function lengths, tracked
# generated files, the Bazel version, the error table, clang's thread-safety analysis); every
# "ok" / "FAILED" line counts as one case.
echo "== scripts/checks.sh"
checks_out="$(scripts/checks.sh 2>&1)"
checks_rc=$?
echo "$checks_out"
checks_passed=$(grep -c '^ok ' <<< "$checks_out")
checks_failed=$(grep -c '^FAILED' <<< "$checks_out")
[ "$checks_rc" -eq 0 ] || [ "$checks_failed" -gt 0 ] || checks_failed=1
total_passed=$((total_passed + checks_passed))
total_failed=$((total_failed + checks_failed))
took "scripts/checks.sh"
# Deployment checks: the runtime image (podman, copy-only) and the Kubernetes manifests; every
# "ok" / "FAILED" line they print counts as one case.
for deploy_check in tests/deploy/check_image.sh tests/deploy/check_manifests.sh; do
  echo "== $deploy_check"
  deploy_out="$("$deploy_check" 2>&1)"
  deploy_rc=$?
  echo "$deploy_out"
  deploy_passed=$(grep -c '^ok ' <<< "$deploy_out")
  deploy_failed=$(grep -c '^FAILED' <<< "$deploy_out")
  [ "$deploy_rc" -eq 0 ] || [ "$deploy_failed" -gt 0 ] || deploy_failed=1
  [ $((deploy_passed + deploy_failed)) -gt 0 ] || deploy_failed=1
  total_passed=$((total_passed + deploy_passed))
  total_failed=$((total_failed + deploy_failed))
done
took "deploy checks"
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
