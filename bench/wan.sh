#!/bin/bash
# The Chile-Cologne link: bundles from the telescope host to the Cologne host over the emulated WAN
# (scripts/local-sites.sh wan on: 100 ms each way, WAN_RATE, 0.01% loss, Linux's default TCP),
#   - the standard way: one rsync over ssh, a single TCP stream, of WAN_SINGLE_MB of random data;
#   - ccat: the whole pipeline of the sites demo (DEMO_SITES=1) with WAN_GB of observations, its
#     transfer jobs on the link between WAN_BOUNDS as the optimizer decides every WAN_DECISION s.
# Prints both throughputs, their ratio (goal: at least 3), ccat's throughput as a fraction of the
# link's rate (goal: at least 0.8), and the optimizer's decisions. ccat's throughput is the bytes of
# the bundles that crossed to Cologne over the time from the first transfer's start to the last
# one's end, from transfer_attempt (the whole run, ramp and tail included), and the link's
# throughput in the optimizer's intervals once its limit had reached its highest value, with
# every job running and transfers waiting (the concurrency it settled on); the
# bytes that left the telescope on the WAN device in that run are printed beside them. The demo
# has no US site here (DEMO_NO_US), so every bundle crosses the WAN.
#
#   bench/wan.sh BIN_DIR      (as root; make bench runs it where ip and sshd are installed)
#
# Environment: WAN_RATE (default 200mbit), WAN_GB (4), WAN_BUNDLE_MB (64), WAN_SINGLE_MB (256),
# WAN_BOUNDS (2-16), WAN_DECISION (30).
set -euo pipefail

bin="$(cd "${1:?usage: bench/wan.sh BIN_DIR}" && pwd)"
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$here/.ccat-dev/bench-wan"
[ "$(id -u)" = 0 ] || { echo "bench/wan.sh: run as root (network namespaces)" >&2; exit 1; }
export CCAT_WAN_RATE="${WAN_RATE:-200mbit}" CCAT_WAN_DELAY=100ms CCAT_WAN_LOSS=0.01
export CCAT_WAN_EMULATOR="${CCAT_WAN_EMULATOR:-$bin/ccat-wan-emulator}"
gigabytes="${WAN_GB:-4}" bundle_mb="${WAN_BUNDLE_MB:-64}" single_mb="${WAN_SINGLE_MB:-256}"
bounds="${WAN_BOUNDS:-2-16}" decision="${WAN_DECISION:-30}"
link_bits="$(awk -v r="$CCAT_WAN_RATE" 'BEGIN { n = r + 0; u = tolower(r); sub(/^[0-9.]+/, "", u);
    s = (u == "gbit") ? 1e9 : (u == "mbit") ? 1e6 : (u == "kbit") ? 1e3 : 1; printf "%d", n * s }')"
sites="$here/.ccat-dev/sites"
rm -rf "$work" && mkdir -p "$work"

eval "$("$here/scripts/local-sites.sh" start | grep '^export ')"
"$here/scripts/local-sites.sh" wan on

echo "== the standard way: one rsync over ssh (one TCP stream), ${single_mb} MB"
head -c "$((single_mb * 1000000))" /dev/urandom > "$work/single.bin"
ip netns exec ccat-cologne mkdir -p "$work/received"
start=$(date +%s.%N)
ip netns exec ccat-telescope rsync -a -e "ssh -F $sites/ssh_config" "$work/single.bin" "ccat-cologne:$work/received/"
single_seconds="$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')"
cmp -s "$work/single.bin" "$work/received/single.bin" || { echo "bench/wan.sh: the single stream's copy differs" >&2; exit 1; }
rm -f "$work/single.bin" "$work/received/single.bin"
single_rate="$(awk -v b="$((single_mb * 1000000))" -v s="$single_seconds" 'BEGIN { printf "%d", b * 8 / s }')"
echo "single stream: ${single_mb} MB in ${single_seconds} s, $((single_rate / 1000000)) Mbit/s"

echo "== ccat: the sites demo with ${gigabytes} GB of observations, transfer jobs ${bounds} on the link"
# Observations of two files, so each package (one observation) makes about one bundle.
file_bytes=$((bundle_mb * 1000000 / 2))
observations=$((gigabytes * 1000 / bundle_mb))
wire_before="$(ip netns exec ccat-telescope cat /sys/class/net/wan0/statistics/tx_bytes)"
# The emulator's own CPU time (user + system clock ticks), to show it is not the bottleneck.
emulator_ticks() { awk '{ print $14 + $15 }' "/proc/$(cat "$sites/wan.pid")/stat"; }
ticks_before="$(emulator_ticks)"
DEMO_SITES=1 DEMO_NO_US=1 DEMO_DIR="$work/demo" DEMO_DATABASE=ccat_bench_wan DEMO_OBSERVATIONS="$observations" DEMO_FILES=2 \
    DEMO_FILE_BYTES="$file_bytes" DEMO_BUNDLE_BYTES="$((bundle_mb * 1000000))" DEMO_LINK_BOUNDS="$bounds" \
    DEMO_LINK_DECISION="$decision" DEMO_MAX_JOBS="${bounds#*-}" DEMO_TIMEOUT=3600 \
    "$here/scripts/demo.sh" "$bin" >"$work/demo.log" 2>&1 \
    || { tail -20 "$work/demo.log" >&2; echo "bench/wan.sh: the demo failed; its log: $work/demo.log" >&2; exit 1; }
wire="$(( $(ip netns exec ccat-telescope cat /sys/class/net/wan0/statistics/tx_bytes) - wire_before ))"
emulator_cpu="$(awk -v t="$(( $(emulator_ticks) - ticks_before ))" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz }')"
"$here/scripts/local-sites.sh" wan off >/dev/null

database="$CCAT_SITES_ADMIN_DATABASE"
database="${database/dbname=ccat/dbname=ccat_bench_wan}"
link_sql="ta.operation_type = 'DATA_TRANSFER' AND ta.succeeded AND ta.origin_location_id IN (SELECT l.id FROM data_location l JOIN site s ON s.id = l.site_id WHERE s.short_name = 'ccat')
    AND ta.destination_location_id IN (SELECT l.id FROM data_location l JOIN site s ON s.id = l.site_id WHERE s.short_name = 'cologne')"
read -r bundles bytes seconds < <(psql -qAt -F ' ' -d "$database" -c "
    SELECT count(*), sum(ta.bytes), extract(epoch FROM max(ta.finished_at) - min(ta.finished_at - ta.seconds * interval '1 second'))
    FROM transfer_attempt ta WHERE $link_sql")
# Settled: the optimizer's intervals after the limit reached its highest value, in which every
# one of those jobs ran and transfers still waited (the link at that concurrency, not its ramp or
# the tail where the work runs out).
read -r settled_intervals settled_limit settled_bps < <(psql -qAt -F ' ' -d "$database" -c "
    WITH d AS (
        SELECT d.* FROM link_concurrency_decision d
        WHERE d.origin_site_id = (SELECT id FROM site WHERE short_name = 'ccat') AND d.destination_site_id = (SELECT id FROM site WHERE short_name = 'cologne')
    ), top AS (SELECT max(new_limit) AS m FROM d), reached AS (SELECT min(decided_at) AS t FROM d, top WHERE d.new_limit = top.m)
    SELECT count(*), (SELECT m FROM top), coalesce(round(avg(d.bytes_per_second)), 0)::bigint FROM d, reached, top
    WHERE d.decided_at > reached.t AND d.waiting_operations > 0 AND d.active_jobs >= top.m")
failed="$(psql -qAt -d "$database" -c "
    SELECT count(*) FROM transfer_attempt ta JOIN data_location b ON b.id = ta.destination_location_id JOIN site sb ON sb.id = b.site_id
    WHERE ta.operation_type = 'DATA_TRANSFER' AND NOT ta.succeeded AND sb.short_name = 'cologne'")"
ours_rate="$(awk -v b="$bytes" -v s="$seconds" 'BEGIN { printf "%d", b * 8 / s }')"
settled_rate=$((settled_bps * 8))
echo "ccat: ${bundles} bundles, ${bytes} bytes in $(printf '%.1f' "$seconds") s, $((ours_rate / 1000000)) Mbit/s; ${failed} failed attempts; ${wire} bytes left the telescope on the WAN ($(awk -v w="$wire" -v b="$bytes" 'BEGIN { printf "%.3f", w / b }') of the bundles)"
echo "optimizer's decisions on ccat -> cologne (time, jobs before -> after, measured, reason):"
psql -qAt -F ' | ' -d "$database" -c "
    SELECT to_char(d.decided_at, 'HH24:MI:SS'), d.previous_limit || ' -> ' || d.new_limit, coalesce(round(d.bytes_per_second * 8 / 1e6) || ' Mbit/s', '-'), d.reason
    FROM link_concurrency_decision d JOIN site a ON a.id = d.origin_site_id JOIN site b ON b.id = d.destination_site_id
    WHERE a.short_name = 'ccat' AND b.short_name = 'cologne' ORDER BY d.decided_at" | sed 's/^/  /'
settled="$(psql -qAt -d "$database" -c "
    SELECT max(new_limit) || ' at most, ' || (array_agg(new_limit ORDER BY decided_at DESC))[1] || ' at the end' FROM link_concurrency_decision d
    JOIN site a ON a.id = d.origin_site_id JOIN site b ON b.id = d.destination_site_id WHERE a.short_name = 'ccat' AND b.short_name = 'cologne'")"

echo
echo "WAN: ${CCAT_WAN_RATE}, 100 ms each way, 0.01% loss each way, Linux's default TCP (CUBIC)"
printf '%-34s %14s %12s\n' "" "Mbit/s" "of the link"
printf '%-34s %14d %12.2f\n' "one rsync stream (${single_mb} MB)" "$((single_rate / 1000000))" "$(awk -v r="$single_rate" -v l="$link_bits" 'BEGIN { print r / l }')"
printf '%-34s %14d %12.2f\n' "ccat pipeline (${gigabytes} GB)" "$((ours_rate / 1000000))" "$(awk -v r="$ours_rate" -v l="$link_bits" 'BEGIN { print r / l }')"
if [ "$settled_intervals" -gt 0 ]; then
    printf '%-34s %14d %12.2f\n' "  settled at ${settled_limit} jobs (${settled_intervals} intervals)" "$((settled_rate / 1000000))" "$(awk -v r="$settled_rate" -v l="$link_bits" 'BEGIN { print r / l }')"
else
    echo "  not settled: the work ran out before the optimizer's highest limit (${settled_limit} jobs) ran full with transfers waiting; try a larger WAN_GB"
fi
echo "ratio ccat / single stream: $(awk -v a="$ours_rate" -v b="$single_rate" 'BEGIN { printf "%.2f", a / b }') whole run, $(awk -v a="$settled_rate" -v b="$single_rate" 'BEGIN { printf "%.2f", a / b }') settled (goal: at least 3)"
echo "ccat's share of the link: $(awk -v r="$ours_rate" -v l="$link_bits" 'BEGIN { printf "%.2f", r / l }') whole run, $(awk -v r="$settled_rate" -v l="$link_bits" 'BEGIN { printf "%.2f", r / l }') settled (goal: at least 0.8)"
echo "transfer jobs on the link: ${settled} (bounds ${bounds})"
echo "the WAN emulator used ${emulator_cpu} s of CPU over the whole demo run (transfers: $(printf "%.0f" "$seconds") s)"
