#!/usr/bin/env bash
# Fuzzes the parsers that take outside input with libFuzzer (the targets in Fuzz/):
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Short runs (CI: 10 s each) start from the seed corpus in Fuzz/corpus/<target>; what a run adds
# is kept in .ccat-dev/fuzz/corpus/<target> for the next one. FUZZ_SEED fixes libFuzzer's random
# seed: CI sets it, so that its short run explores the same inputs each time rather than leaving
# a finding to chance. A crash, trap or timeout writes its
# input to .ccat-dev/fuzz/artifacts/ and fails the script; replay it with
#   Fuzz/.build/debug/<target> .ccat-dev/fuzz/artifacts/<file>
# The last line of each target's report says how many inputs it ran.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(FuzzTopology FuzzRegistrationLines FuzzSlurmOutput FuzzSbatchScript FuzzS3XML FuzzTarArchive)
fi
SWIFT=${SWIFT:-swift}
# lld: gold fails on the entry point SwiftPM gives executables when libFuzzer brings its own main.
flags=(-Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library -Xswiftc -use-ld=lld)
# A build plan cached before a module of the main package moved can name files that are gone;
# one clean rebuild settles it.
$SWIFT build --package-path Fuzz "${flags[@]}" || { rm -rf Fuzz/.build && $SWIFT build --package-path Fuzz "${flags[@]}"; } || exit 1
bin=$($SWIFT build --package-path Fuzz "${flags[@]}" --show-bin-path)
work=.ccat-dev/fuzz
mkdir -p "$work/artifacts"
failed=()
# Seeds kept elsewhere in the tree, not copied into Fuzz/corpus: the rendered job scripts the
# golden tests compare against are what the #SBATCH reader reads in practice.
seeds() {
    case "$1" in
        FuzzSbatchScript) echo Tests/SchedulingTests/Golden ;;
    esac
}
for target in "${targets[@]}"; do
    mkdir -p "$work/corpus/$target"
    log="$work/$target.log"
    # -timeout: one input may take 10 s at most (a hang is a finding); -rss_limit_mb: so is
    # runaway memory (an alias bomb, say); -max_len: inputs up to 64 KiB.
    # SWIFT_BACKTRACE=enable=no: a Swift trap reaches libFuzzer's handler, which writes the input
    # that caused it (Swift's own backtracer would end the process first).
    SWIFT_BACKTRACE=enable=no "$bin/$target" ${FUZZ_SEED:+-seed="$FUZZ_SEED"} -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="$work/artifacts/$target-" -print_final_stats=1 \
        "$work/corpus/$target" "Fuzz/corpus/$target" $(seeds "$target") >"$log" 2>&1
    status=$?
    runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo "?")
    corpus=$(find "$work/corpus/$target" -type f | wc -l)
    if [ $status -eq 0 ]; then
        echo "fuzz $target: $runs inputs in ${seconds} s, no crash (corpus: $corpus inputs)"
    else
        echo "fuzz $target: FAILED after $runs inputs (status $status); log: $log"
        grep -E '^==|ERROR|Fatal error|deadly signal|timeout|out-of-memory|Test unit written' "$log" | head -20
        failed+=("$target")
    fi
done
[ ${#failed[@]} -eq 0 ] || { echo "fuzz: findings in ${failed[*]}"; exit 1; }
