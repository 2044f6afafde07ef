#!/usr/bin/env bash
# The checks that keep the tree as docs/architecture.md describes it. Prints "ok NAME" or
# "FAILED NAME" (with what failed) per check and exits non-zero when any failed.
#   scripts/checks.sh
set -uo pipefail
cd "$(dirname "$0")/.."

status=0
pass() { echo "ok $1"; }
fail() { echo "FAILED $1"; echo "$2" | head -n 40; status=1; }

sources=$(git ls-files '*.cc' '*.h' | grep -v '^third_party/')

# Every C++ file of ours is formatted by .clang-format.
unformatted=$(for f in $sources; do
  clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || echo "$f"
done)
if [ -z "$unformatted" ]; then pass "clang-format"; else
  fail "clang-format" "not formatted (run: clang-format -i FILE):
$unformatted"
fi

# No source file over 800 lines, no function over 80 outside tests.
if long=$(python3 scripts/function_lengths.py --max_function 80 --max_file 800 $sources); then
  pass "file and function lengths"
else
  fail "file and function lengths" "$long"
fi

# No generated file is tracked.
generated=$(git ls-files | grep -E '(^|/)__pycache__/|\.py[co]$|^bazel-|\.o$' )
if [ -z "$generated" ]; then pass "no tracked generated files"; else
  fail "no tracked generated files" "$generated"
fi

# The Bazel in use is the one .bazelversion names: Debian's bazel-bootstrap installs the real
# binary as /usr/bin/bazel-4, which the /usr/bin/bazel wrapper runs for a .bazelversion of "4".
installed=$(dpkg-query -W -f='${Version}' bazel-bootstrap 2>/dev/null | sed 's/+.*//')
if [ "${installed%%.*}" = "$(cat .bazelversion)" ]; then pass "bazel version $installed"; else
  fail "bazel version" ".bazelversion says $(cat .bazelversion), bazel-bootstrap is ${installed:-missing}"
fi

# Every status code the daemon's code returns is in the error table (common/error_table.cc,
# which //common:error_table_test keeps equal to docs/operating.md's table).
daemon_sources=$(git ls-files 'daemon/*.cc' 'daemon/*.h' | grep -v '_test\.cc$' |
  grep -v 'daemon/rpc_metrics.cc')
returned=$( (grep -ohE 'absl::[A-Za-z]+Error\(' $daemon_sources |
    sed -E 's/absl::([A-Za-z]+)Error\(/\1/' |
    sed -E 's/([a-z])([A-Z])/\1_\2/g' | tr '[:lower:]' '[:upper:]'
  grep -ohE 'grpc::StatusCode::[A-Z_]+|grpc::Status::CANCELLED' $daemon_sources |
    sed -E 's/.*:://') | sort -u | grep -vx 'OK')
table=$(grep -oE '^\| `[A-Z_]+`' docs/operating.md | tr -d '|` ')
missing=$(comm -23 <(echo "$returned") <(echo "$table" | sort -u))
if [ -z "$missing" ]; then pass "error table lists every code the daemon returns"; else
  fail "error table lists every code the daemon returns" "missing: $missing"
fi

# Clang's thread-safety analysis: every ABSL_GUARDED_BY in daemon/ and worker/ is checked.
tsa_base="${SPLITD_TSA_OUTPUT_BASE:-$HOME/.cache/splitd-tsa-bazel}"
if CC=clang bazel --output_base="$tsa_base" build --symlink_prefix=/ --config=thread_safety \
    //daemon/... //worker/... > /tmp/splitd-thread-safety.log 2>&1; then
  pass "clang -Wthread-safety -Werror build of daemon/ and worker/"
else
  fail "clang -Wthread-safety -Werror build of daemon/ and worker/" \
    "$(grep -E 'error:|warning:' /tmp/splitd-thread-safety.log | head -n 30)"
fi
exit "$status"
