#!/usr/bin/env bash
# Runs the built test suite (swift test --skip-build ...), keeps its whole output in
# .ccat-dev/test.log, and when a test fails repeats each recorded issue at the end, one line each,
# so that the last lines of a long CI log say what failed and where.
#   scripts/run-tests.sh [swift test arguments...]
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .ccat-dev
log=.ccat-dev/test.log
# Swift Testing starts every test at once unless told otherwise. On the 2-core CI machine that
# drove the load to 60 for most of the run and a connection to the local PostgreSQL past 11 s (the
# clients' connect timeout is 10 s); four test cases per core kept the load near 20 and connections
# under 3 s, and the run took no longer (574 s against 649 s). CCAT_TEST_WIDTH overrides it.
width="${CCAT_TEST_WIDTH:-$(( $(nproc) * 4 ))}"
# SWIFT may be a command with words (e.g. "xcrun swift").
${SWIFT:-swift} test --skip-build --experimental-maximum-parallelization-width "$width" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  # Recorded issues, and what a crashed test process leaves (fatal errors, signals).
  issues=$(grep -E 'recorded an issue|error: -\[|: error: |Fatal error|exited with (unexpected )?signal|[Cc]rash' "$log" | cut -c1-400)
  echo
  echo "== swift test exited with status $status; $(printf '%s\n' "$issues" | grep -c .) recorded issue(s) below; the whole output is in $log =="
  printf '%s\n' "$issues" | head -40
fi
exit "$status"
