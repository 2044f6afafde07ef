#!/usr/bin/env bash
# Runs every test (unit, gRPC, multi-process end-to-end) and ends with "N passed, N failed".
# Usage: scripts/test.sh [bazel target patterns, default //...]
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

patterns=("$@")
[ "${#patterns[@]}" -gt 0 ] || patterns=(//...)

bazel test --keep_going "${patterns[@]}"
bazel_rc=$?

# Bazel's own summary counts targets; count test cases from each target's test.xml instead.
targets=$(bazel query "tests(set(${patterns[*]}))" 2>/dev/null)
python3 - "$bazel_rc" $targets <<'PY'
import os, sys, xml.etree.ElementTree as ET
bazel_rc, targets = int(sys.argv[1]), sys.argv[2:]
passed = failed = skipped = 0
for target in targets:
    path = os.path.join("bazel-testlogs", target.lstrip("/").replace(":", "/"), "test.xml")
    try:
        cases = list(ET.parse(path).getroot().iter("testcase"))
    except (OSError, ET.ParseError):
        print(f"FAILED {target}: no test results (did not build or crashed)")
        failed += 1
        continue
    for case in cases:
        name = f"{target} {case.get('classname', '')}.{case.get('name', '')}"
        if case.find("failure") is not None or case.find("error") is not None:
            print(f"FAILED {name}")
            failed += 1
        elif case.get("result") == "skipped" or case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
if bazel_rc != 0 and failed == 0:
    print(f"bazel test exited with {bazel_rc}")
    failed = 1
line = f"{passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
print(line)
sys.exit(1 if failed else 0)
PY
