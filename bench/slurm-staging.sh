#!/bin/bash
# Time from sbatch to a job running on its data, for one small observation that is already
# archived, on the single-node Slurm cluster:
#   - ccat: the job script says '#BB_LUA ccat stage obs=... location=...'; Slurm holds the job
#     while ccat stages (etc/slurm/burst_buffer.lua);
#   - by hand: 'ccat stage request --wait' on the login node, then sbatch of the same job.
# Both are measured ROUNDS times, alternately, on the same observation in the same run; the job
# records when it started. Prints the medians and their ratio (goal for ccat: under 15 s).
#
#   bench/slurm-staging.sh BIN_DIR [ROUNDS]     (as root: make bench runs it where Slurm is installed)
set -euo pipefail

bin="$(cd "${1:?usage: bench/slurm-staging.sh BIN_DIR [ROUNDS]}" && pwd)"
rounds="${2:-5}"
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$here/.ccat-dev/bench-staging"
[ "$(id -u)" = 0 ] || { echo "bench/slurm-staging.sh: run as root (it creates a scientist user and submits as them)" >&2; exit 1; }

eval "$("$here/scripts/local-slurm.sh" start | grep '^export ')"
setup="$(DEMO_DIR="$work" DEMO_DATABASE=ccat_bench_staging DEMO_SETUP_ONLY=1 SCHEDULER=slurm DEMO_OBSERVATIONS=2 \
    "$here/scripts/demo.sh" "$bin")"
export CCAT_DATABASE_URL="$(sed -n 's/^database: //p' <<<"$setup")"
munge_socket="$("$here/scripts/local-munge.sh" start)"
sci="$("$here/scripts/slurm-scientist.sh" "$bin" "$CCAT_DATABASE_URL" "$munge_socket")"
"$bin/ccat" daemon --config "$work/ccat.yaml" >"$work/daemon.log" 2>&1 &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null || true; wait $daemon 2>/dev/null || true' EXIT

archived() {
    "$bin/ccat" status --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print(int(s["packages"] == 2 and s["packages_archived_everywhere"] == 2))'
}
for _ in $(seq 1 600); do [ "$(archived)" = 1 ] && break; sleep 1; done
[ "$(archived)" = 1 ] || { echo "bench: the observations were not archived within 600 s; see $work/daemon.log" >&2; exit 1; }

jobs="$work/jobs"
mkdir -p "$jobs" && chmod 1777 "$jobs" && chmod 755 "$work"
script() { # name, directive: a job that records when it started and checks its data
    cat >"$jobs/$1.sh" <<JOB
#!/bin/bash
#SBATCH --time=5
#SBATCH --output=$jobs/$1.out
$2
date +%s.%N
cd "\${CCAT_STAGED_DIR:-\$1}" && sha256sum --quiet -c SHA256SUMS
JOB
    chmod 755 "$jobs/$1.sh"
}
script bb "#BB_LUA ccat stage obs=obs-2026-01 location=ramses_processing"
script plain ""
as_sci() { runuser -u "$sci" -- "$@"; }
ended() { # job id: waits until it ended; fails unless COMPLETED
    local state=""
    for _ in $(seq 1 600); do
        state="$(sacct -n -X -P -j "$1" -o State | head -1)"
        case "$state" in COMPLETED) return 0 ;; FAILED|CANCELLED*|TIMEOUT|OUT_OF_MEMORY) break ;; esac
        sleep 0.5
    done
    echo "bench: job $1 ended '$state': $(squeue -h -j "$1" -o %r)" >&2
    exit 1
}
scientist=(--database "$CCAT_DATABASE_URL user=$sci")

ours=()
theirs=()
for round in $(seq 1 "$rounds"); do
    rm -f "$jobs/bb.out" "$jobs/plain.out"
    start="$(date +%s.%N)"
    job="$(as_sci sbatch --parsable "$jobs/bb.sh")"
    ended "$job"
    ours+=("$(python3 -c "print(round($(head -1 "$jobs/bb.out") - $start, 2))")")

    start="$(date +%s.%N)"
    request="$(as_sci env CCAT_MUNGE_SOCKET="$munge_socket" "$bin/ccat" stage request "${scientist[@]}" --obs obs-2026-01 \
        --location ramses_processing --wait --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
    directory="$work/cologne/ramses_processing/$sci/$request"
    job="$(as_sci sbatch --parsable "$jobs/plain.sh" "$directory")"
    ended "$job"
    theirs+=("$(python3 -c "print(round($(head -1 "$jobs/plain.out") - $start, 2))")")
    as_sci "$bin/ccat" stage release "${scientist[@]}" "$request" >/dev/null
    echo "round $round: ccat ${ours[-1]} s, by hand ${theirs[-1]} s"
done
python3 - "${ours[*]}" "${theirs[*]}" <<'PY'
import statistics, sys
ours = [float(x) for x in sys.argv[1].split()]
theirs = [float(x) for x in sys.argv[2].split()]
a, b = statistics.median(ours), statistics.median(theirs)
print(f"sbatch -> job running on its data, one archived observation (3 files), median of {len(ours)} rounds:")
print(f"  ccat (#BB_LUA ccat stage directive):         {a:6.2f} s  (goal < 15 s: {'met' if a < 15 else 'NOT met'})")
print(f"  by hand (ccat stage request --wait, sbatch): {b:6.2f} s")
print(f"  ratio (by hand / ccat):                      {b / a:6.2f}")
PY
