#!/usr/bin/env bash
# The whole pipeline on one machine: local PostgreSQL, an S3 server on loopback, the local
# scheduler (or the single-node Slurm cluster with SCHEDULER=slurm). Called by `make demo`.
#
#   scripts/demo.sh BIN_DIR [--keep-running]
#
# The daemon serves its status page and /metrics on loopback (DEMO_HTTP, default 127.0.0.1:0: a
# free port; the address is printed). --keep-running leaves the daemon and its page up after the
# demo until Ctrl-C.
#
# Environment: SCHEDULER (local|slurm), DEMO_OBSERVATIONS, DEMO_FILES, DEMO_TIMEOUT (seconds),
# DEMO_DIR (default .ccat-dev/demo, recreated), DEMO_DATABASE (default ccat_demo, recreated),
# DEMO_SETUP_ONLY=1 (stop after registering the files, before the daemon; tests start their own),
# DEMO_PG_DIR (a private PostgreSQL cluster there instead of the checkout's), DEMO_STAGING_GROUPS
# (unix groups allowed to stage, besides the demo user's), DEMO_RELAY=1 (a Santiago site with only
# a buffer, and CCAT's bundles for Cologne relayed through it), DEMO_SITES=1 (the deployment:
# every site on a host of its own, below).
#
# DEMO_SITES=1 (root; scripts/local-sites.sh builds the hosts as network namespaces): PostgreSQL
# and the daemon on the cologne host, the database reached over TLS (verify-full) by certificate
# logins of the daemon, runner and DAQ roles; each site's jobs run on its host (a setup.mustache
# override enters the host's namespace); bundles cross to Cologne and the US by rsync over ssh to
# the hosts' own sshd; the DAQ registers files on the telescope host; the scientist stages from
# the login host with a password login from a .pgpass. DEMO_OUTAGE=SECONDS (with DEMO_SITES) cuts
# the telescope's link that long while the pipeline runs; the instrument writes two more
# observations meanwhile, which `ccat files scan` registers once the link is back.
#
# Sizes and limits (bench/wan.sh sets them): DEMO_FILE_BYTES (each file's size; default about
# 200-330 kB), DEMO_BUNDLE_BYTES (the daemon's bundle_max_bytes, default 2000000), DEMO_LINK_BOUNDS
# (MIN-MAX transfer jobs on the telescope's links, default 1-4), DEMO_LINK_DECISION (seconds
# between the optimizer's decisions, default 5), DEMO_MAX_JOBS (max_queued_jobs per queue, default
# 4, and then also the local scheduler's jobs per queue, by default the number of cores), DEMO_WAN=1 (with DEMO_SITES: the telescope-cologne
# path becomes the emulated WAN, 'scripts/local-sites.sh wan on' with its CCAT_WAN_* settings),
# DEMO_NO_US=1 (no US site: Cologne is the only archive site).
#
# A demo topology (CCAT source + buffer; Cologne buffer + S3 archive + ramses_processing; US
# buffer + disk archive) under .ccat-dev/demo, synthetic observations, then `ccat daemon` until
# every package is archived at both archive sites and the source and buffer copies are deleted;
# then a scientist stages one observation, checks it, and releases it.
set -euo pipefail

bin="${1:?usage: scripts/demo.sh BIN_DIR [--keep-running]}"
keep_running=0
case "${2:-}" in
    --keep-running) keep_running=1 ;;
    "") ;;
    *) echo "demo: unknown argument '$2' (--keep-running)" >&2; exit 2 ;;
esac
http="${DEMO_HTTP:-127.0.0.1:0}"
here="$(cd "$(dirname "$0")/.." && pwd)"
demo="${DEMO_DIR:-$here/.ccat-dev/demo}"
database="${DEMO_DATABASE:-ccat_demo}"
scheduler="${SCHEDULER:-local}"
observations="${DEMO_OBSERVATIONS:-20}"
files_per_observation="${DEMO_FILES:-3}"
timeout="${DEMO_TIMEOUT:-600}"
sites="${DEMO_SITES:-}"
if [ -n "$sites" ] && [ "$scheduler" != local ]; then
    echo "demo: DEMO_SITES runs with the local scheduler (the hosts are namespaces of this machine)" >&2; exit 2
fi

say() { printf '\n== %s\n' "$*"; }
# on_host HOST COMMAND...: COMMAND on that host (DEMO_SITES), or right here.
on_host() {
    local host="$1"; shift
    if [ -n "$sites" ]; then ip netns exec "ccat-$host" "$@"; else "$@"; fi
}

if [ -n "$sites" ]; then
    say "the hosts: telescope, cologne (PostgreSQL with TLS, S3), us, login (scripts/local-sites.sh)"
    eval "$("$here/scripts/local-sites.sh" start | grep '^export ')"
    "$here/scripts/local-sites.sh" status
    conninfo="$CCAT_SITES_ADMIN_DATABASE"
    endpoint="$CCAT_SITES_S3_ENDPOINT"
else
    say "starting PostgreSQL and the S3 test server"
    conninfo="$(CCAT_DEV_DIR="${DEMO_PG_DIR:-${CCAT_DEV_DIR:-$here/.ccat-dev}}" "$here/scripts/local-postgres.sh" start | tail -1)"
    endpoint="$("$here/scripts/local-s3.sh" start | sed -n 's/^export CCAT_TEST_S3_ENDPOINT=//p')"
fi
[ -n "$endpoint" ] || { echo "demo: the S3 test server did not report its endpoint (scripts/local-s3.sh start)" >&2; exit 1; }
export CCAT_DATABASE_URL="$conninfo"
if [ "$scheduler" = slurm ]; then
    eval "$("$here/scripts/local-slurm.sh" start | grep '^export ')"
fi

say "a fresh demo database and directory: $demo"
# The demo gets its own database (the local cluster's role is its superuser), so the development
# database is left alone.
psql -qAt -d "${conninfo/dbname=ccat/dbname=postgres}" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" -c "CREATE DATABASE $database"
export CCAT_DATABASE_URL="${conninfo/dbname=ccat/dbname=$database}"
rm -rf "$demo"
mkdir -p "$demo"/{ccat/instrument_data,ccat/buffer,cologne/buffer,cologne/ramses_processing,us/buffer,us/archive,state}
if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then chmod 755 "$here/.ccat-dev" "$demo"; fi
bucket="${database//_/-}-archive"
on_host cologne curl -s -o /dev/null -X PUT "$endpoint/$bucket"
umask 077
printf 'aws_access_key_id = ccat-test\naws_secret_access_key = ccat-test-secret\n' > "$demo/s3-credentials"
umask 022

# Who may stage into ramses_processing: the demo user's group, and DEMO_STAGING_GROUPS.
staging_groups="$(id -gn)"
for group in ${DEMO_STAGING_GROUPS:-}; do staging_groups="$staging_groups, $group"; done
# With Slurm, a scientist's batch job stages too: the demo scientist's group may stage.
[ "$scheduler" != slurm ] || staging_groups="$staging_groups, ccat_demo"

link_bounds="${DEMO_LINK_BOUNDS:-1-4}"
[[ "$link_bounds" =~ ^[1-9][0-9]*-[1-9][0-9]*$ ]] || { echo "demo: DEMO_LINK_BOUNDS is MIN-MAX, such as 2-16, not '$link_bounds'" >&2; exit 2; }
# With DEMO_SITES, other sites reach a buffer by rsync over ssh to its host.
ssh_host() { if [ -n "$sites" ]; then printf ', host: ccat-%s' "$1"; fi; }
cat > "$demo/topology.yaml" <<EOF
batch:
  time_limit: "0:30:00"
  memory: 1G
  max_queued_jobs: ${DEMO_MAX_JOBS:-4}
sites:
  - short_name: ccat
    name: CCAT Observatory
    locations:
      - name: instrument_data
        type: SOURCE
        storage: {disk: {root: "$demo/ccat/instrument_data"}}
      - name: buffer
        type: BUFFER
        storage: {disk: {root: "$demo/ccat/buffer"}}
  - short_name: cologne
    name: University of Cologne
    locations:
      - name: buffer
        type: BUFFER
        storage: {disk: {root: "$demo/cologne/buffer"$(ssh_host cologne)}}
      - name: long_term_archive
        type: LONG_TERM_ARCHIVE
        storage: {s3: {endpoint: "$endpoint", bucket: $bucket, region: us-east-1, prefix: raw, credentials: "file:$demo/s3-credentials"}}
      - name: ramses_processing
        type: PROCESSING
        storage: {disk: {root: "$demo/cologne/ramses_processing"}}
        staging: {groups: [$staging_groups]}
$(if [ -n "${DEMO_RELAY:-}" ]; then printf '%s\n' \
'  - short_name: santiago' \
'    name: Santiago relay (no archive)' \
'    locations:' \
'      - name: buffer' \
'        type: BUFFER' \
"        storage: {disk: {root: \"$demo/santiago/buffer\"}}"; fi)
$(if [ -z "${DEMO_NO_US:-}" ]; then cat <<US
  - short_name: us
    name: US archive site
    locations:
      - name: buffer
        type: BUFFER
        storage: {disk: {root: "$demo/us/buffer"$(ssh_host us)}}
      - name: long_term_archive
        type: LONG_TERM_ARCHIVE
        storage: {disk: {root: "$demo/us/archive"}}
US
fi)
$(if [ -n "$sites" ]; then printf '%s\n' \
'# The telescope'"'"'s links: the optimizer runs 1 to 4 transfer jobs on each.' \
'links:' \
"  - {from: ccat, to: cologne, min_active: ${link_bounds%-*}, max_active: ${link_bounds#*-}}" \
"$(if [ -z "${DEMO_NO_US:-}" ]; then echo "  - {from: ccat, to: us, min_active: ${link_bounds%-*}, max_active: ${link_bounds#*-}}"; fi)"; fi)
EOF
"$bin/ccat" db migrate >/dev/null
on_host cologne "$bin/ccat" topology apply "$demo/topology.yaml" >/dev/null
if [ -n "$sites" ]; then
    # Between hosts the bundles go by rsync over ssh (COPY cannot reach another host).
    links="ccat:cologne"
    [ -n "${DEMO_NO_US:-}" ] || links="$links ccat:us cologne:us us:cologne"
    for link in $links; do
        from="${link%:*}" to="${link#*:}"
        "$bin/ccat" routes add "${from}_to_${to}_rsync" --type custom --from-location "$from.buffer" --to-location "$to.buffer" --method rsync >/dev/null
    done
fi
if [ -n "${DEMO_RELAY:-}" ]; then
    mkdir -p "$demo/santiago/buffer"
    "$bin/ccat" routes add ccat_via_santiago --type relay --from ccat --to cologne --via santiago >/dev/null
fi
# The demo user stages as a scientist: a database login of their own in ccat_scientist.
me="$(id -un)"
# Roles belong to the whole PostgreSQL cluster: another demo set-up (tests run several at once) may
# create or grant the same one at the same moment, which is fine.
psql -qAt -d "$CCAT_DATABASE_URL" -v me="$me" <<'SQL' >/dev/null
SELECT format('DO $d$ BEGIN CREATE ROLE %I LOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $d$', :'me')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'me') \gexec
SELECT format('DO $d$ BEGIN GRANT ccat_scientist TO %I; EXCEPTION WHEN OTHERS THEN IF NOT pg_has_role(%L, ''ccat_scientist'', ''MEMBER'') THEN RAISE; END IF; END $d$', :'me', :'me')
WHERE NOT pg_has_role(:'me', 'ccat_scientist', 'MEMBER') \gexec
SQL
scientist_db="$CCAT_DATABASE_URL user=$me"
if [ -n "$sites" ]; then
    # The scientist logs in over TLS with a password, kept in a .pgpass of their own.
    password="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
    # From the environment, not the command line, which ps shows to everyone.
    printf '%s\n' '\getenv password CCAT_DEMO_PASSWORD' "ALTER ROLE :\"me\" PASSWORD :'password';" \
        | CCAT_DEMO_PASSWORD="$password" psql -qAt -d "$CCAT_DATABASE_URL" -v me="$me" >/dev/null
    (umask 077 && printf '10.77.0.20:5432:%s:%s:%s\n' "$database" "$me" "$password" >"$demo/scientist.pgpass")
    unset password
    export PGPASSFILE="$demo/scientist.pgpass"
    scientist_db="$CCAT_SITES_DATABASE dbname=$database user=$me"
fi
# Each kind of client logs in with a role of its own (docs/admin-guide.md, "Roles"): the daemon as
# ccat_demo_daemon (the catalogue, not the schema), the runners as ccat_demo_runner (only their
# batch job's operations, proved by the job's secret), the DAQ hook as ccat_demo_daq (files at
# CCAT's SOURCE locations only). The demo user stays the owner for set-up and 'ccat status'.
psql -qAt -d "$CCAT_DATABASE_URL" <<'SQL' >/dev/null
SELECT format('DO $d$ BEGIN CREATE ROLE %I LOGIN IN ROLE %I; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $d$', login, grp)
FROM (VALUES ('ccat_demo_daemon', 'ccat_daemon'), ('ccat_demo_runner', 'ccat_runner'), ('ccat_demo_daq', 'ccat_instrument')) AS wanted (login, grp)
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = login) \gexec
INSERT INTO instrument_login (login_role, site_id) SELECT 'ccat_demo_daq', id FROM site WHERE short_name = 'ccat' ON CONFLICT DO NOTHING;
SQL
daemon_db="$CCAT_DATABASE_URL user=ccat_demo_daemon"
runner_db="$CCAT_DATABASE_URL user=ccat_demo_runner"
daq_db="$CCAT_DATABASE_URL user=ccat_demo_daq"
if [ -n "$sites" ]; then
    # Over the network each service shows a certificate the local CA issued for its role.
    for role in daemon runner daq; do
        login="$CCAT_SITES_DATABASE dbname=$database user=ccat_demo_$role $("$here/scripts/local-sites.sh" client-cert "ccat_demo_$role")"
        printf -v "${role}_db" '%s' "$login"
    done
fi
munge_socket="$("$here/scripts/local-munge.sh" start)"

say "$observations observations of $files_per_observation files from the instrument"
for number in $(seq 1 "$observations"); do
    # obs-2026-01 onwards, whatever the count (seq -w would give obs-2026-1 below ten).
    obs="$(printf '%02d' "$number")"
    mkdir -p "$demo/ccat/instrument_data/obs-2026-$obs"
    for file in $(seq 1 "$files_per_observation"); do
        head -c "${DEMO_FILE_BYTES:-$((200000 + RANDOM * 4))}" /dev/urandom > "$demo/ccat/instrument_data/obs-2026-$obs/scan $file.fits"
    done
done
on_host telescope "$bin/ccat" files scan --database "$daq_db" ccat:instrument_data --settle 0 --instrument primecam/mkid-1
# The instrument's copies are deleted once archived: keep their checksums to check staging.
( cd "$demo/ccat/instrument_data" && find obs-2026-01 -type f -print0 | sort -z | xargs -0 sha256sum ) > "$demo/source.sha256"

overrides=""
if [ -n "$sites" ]; then
    # Each site's jobs run on that site's host: the job script enters the host's network namespace
    # before the runner starts (the runner keeps the job's environment, and with it its secret).
    mkdir -p "$demo/jobscripts"
    cat > "$demo/jobscripts/setup.mustache" <<'TEMPLATE'
# Demo hosts (scripts/local-sites.sh): the work of site {{site}} runs on its host.
case {{site}} in
    ccat) host=telescope ;;
    *) host={{site}} ;;
esac
if [ "${CCAT_DEMO_HOST:-}" != "$host" ]; then
    export CCAT_DEMO_HOST="$host"
    exec ip netns exec "ccat-$host" /bin/bash "$0"
fi
# On its host a job sees its own site's storage only: the other sites' directories are covered by
# an empty read-only tmpfs (ip netns exec gave the job a mount namespace of its own, so the cover is
# the job's alone). Whatever crosses to another site must go over the network.
for other in ccat cologne us santiago; do
    if [ "$other" != {{site}} ] && [ -d "@DEMO@/$other" ]; then
        mount -t tmpfs -o ro,size=4k,mode=0555 "not-on-$host" "@DEMO@/$other"
        covered="${covered:-} $other"
    fi
done
echo "job on host $host ($(ip -4 -o addr show dev eth0 | awk '{print $4}')); other sites' storage covered:${covered:-}" >&2
TEMPLATE
    sed -i "s|@DEMO@|$demo|g" "$demo/jobscripts/setup.mustache"
    overrides="jobscript_overrides: \"$demo/jobscripts\""
fi
cat > "$demo/ccat.yaml" <<EOF
scheduler: $scheduler
$overrides
runner_database: "$runner_db"
state_directory: "$demo/state"
munge_socket: "$munge_socket"
staging_location: ramses_processing
# Small bundles and no waiting, so 20 observations flow through in seconds.
daemon:
  interval: 2
  poll_interval: 1
  package_settle: 0
  bundle_max_age: 0
  bundle_max_bytes: ${DEMO_BUNDLE_BYTES:-2000000}
  monitoring_interval: 60
  link_decision_interval: ${DEMO_LINK_DECISION:-5}
$(if [ -n "${DEMO_MAX_JOBS:-}" ]; then echo "local_concurrency: $DEMO_MAX_JOBS"; fi)
EOF
if [ -n "${DEMO_WAN:-}" ]; then
    [ -n "$sites" ] || { echo "demo: DEMO_WAN needs DEMO_SITES" >&2; exit 2; }
    say "the telescope-cologne path as the Chile-Cologne WAN"
    "$here/scripts/local-sites.sh" wan on
fi
if [ -n "${DEMO_SETUP_ONLY:-}" ]; then
    echo "database: $CCAT_DATABASE_URL"
    exit 0
fi

say "ccat daemon ($scheduler scheduler); its log: $demo/daemon.log"
host_prefix=()
[ -z "$sites" ] || host_prefix=(ip netns exec ccat-cologne)
"${host_prefix[@]}" env CCAT_LOG_LEVEL=info "$bin/ccat" daemon --config "$demo/ccat.yaml" --database "$daemon_db" --http "$http" >"$demo/daemon.log" 2>&1 &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null || true; wait $daemon 2>/dev/null || true' EXIT
page=""
for _ in $(seq 1 60); do
    page="$(sed -n 's/^ccat daemon: status page at \([^ ]*\) .*/\1/p' "$demo/daemon.log" | head -1)"
    [ -n "$page" ] && break
    kill -0 $daemon 2>/dev/null || { echo "demo: the daemon stopped:" >&2; tail -5 "$demo/daemon.log" >&2; exit 1; }
    sleep 0.5
done
[ -n "$page" ] || { echo "demo: the daemon did not say where its status page is; see $demo/daemon.log" >&2; exit 1; }
echo "status page: $page (metrics: ${page}metrics); open it while the demo runs"

progress() {
    local json
    json="$("$bin/ccat" status --json 2>"$demo/status.err")" || return 1
    printf '%s' "$json" | python3 -c '
import json, sys
s = json.load(sys.stdin)
left = sum(c["present"] for c in s["copies"] if c["location_type"] in ("SOURCE", "BUFFER"))
stuck = [a for a in s["attention"] if a["state"] == "intervention"]
print(s["packages_archived_everywhere"], s["packages"], left, len(stuck))'
}
if [ -n "${DEMO_OUTAGE:-}" ]; then
    [ -n "$sites" ] || { echo "demo: DEMO_OUTAGE needs DEMO_SITES" >&2; exit 2; }
    sleep 3
    say "an outage: the telescope's link is down for ${DEMO_OUTAGE} s"
    "$here/scripts/local-sites.sh" link down
    for late in 1 2; do
        mkdir -p "$demo/ccat/instrument_data/obs-2026-late-$late"
        for file in $(seq 1 "$files_per_observation"); do
            head -c $((200000 + RANDOM * 4)) /dev/urandom > "$demo/ccat/instrument_data/obs-2026-late-$late/scan $file.fits"
        done
    done
    if scan="$(on_host telescope "$bin/ccat" files scan --database "$daq_db connect_timeout=5" ccat:instrument_data --settle 0 --instrument primecam/mkid-1 2>&1)"; then
        echo "demo: files scan succeeded while the link was down: $scan" >&2; exit 1
    fi
    echo "registration failed while the link was down: $scan"
    sleep "$DEMO_OUTAGE"
    "$here/scripts/local-sites.sh" link up
    # The DAQ hook runs again (as from cron) until the database answers.
    for _ in $(seq 1 30); do
        if scan="$(on_host telescope "$bin/ccat" files scan --database "$daq_db" ccat:instrument_data --settle 0 --instrument primecam/mkid-1 2>&1)"; then break; fi
        sleep 2
    done
    echo "registered after the outage: $scan"
fi
start=$SECONDS
while true; do
    # A status that does not come (the database busy past its connect timeout) is asked again; only
    # the demo's own time limit ends the wait.
    if read -r archived packages left stuck < <(progress); then
        printf '\r%4ss: packages archived at both sites %s/%s, temporary copies left %s   ' $((SECONDS - start)) "$archived" "$packages" "$left"
        if [ "$packages" -gt 0 ] && [ "$archived" = "$packages" ] && [ "$left" = 0 ]; then echo; break; fi
        if [ "$stuck" != 0 ]; then echo; echo "demo: operations need intervention; see 'ccat status' below and $demo/daemon.log" >&2; "$bin/ccat" status; exit 1; fi
    else
        echo; echo "demo: ccat status failed, asking again: $(tail -1 "$demo/status.err")" >&2
    fi
    if [ $((SECONDS - start)) -gt "$timeout" ]; then echo; echo "demo: not done after ${timeout}s; see $demo/daemon.log" >&2; "$bin/ccat" status; exit 1; fi
    sleep 2
done

say "a scientist ($me) stages observation obs-2026-01 into ramses_processing"
on_host login "$bin/ccat" stage request --database "$scientist_db" --config "$demo/ccat.yaml" --obs obs-2026-01 --wait --timeout "$timeout"
request="$(on_host login "$bin/ccat" stage list --database "$scientist_db" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')"
staged="$demo/cologne/ramses_processing/$me/$request"
ls -l "$staged/obs-2026-01"
( cd "$staged" && sha256sum --quiet -c "$demo/source.sha256" ) || { echo "demo: staged files differ from the instrument's" >&2; exit 1; }
echo "staged files match the instrument's checksums"
on_host login "$bin/ccat" stage release --database "$scientist_db" "$request"
for _ in $(seq 1 "$timeout"); do [ -e "$staged" ] || break; sleep 1; done
[ ! -e "$staged" ] || { echo "demo: $staged still there after release" >&2; exit 1; }
echo "released: $staged removed"

if [ "$scheduler" = slurm ]; then
    # Slurm-native staging: a scientist's batch job names its data in a '#BB_LUA ccat stage'
    # directive; Slurm holds it while ccat stages, then runs it on the data (etc/slurm/burst_buffer.lua).
    # Slurm refuses burst buffers to root's jobs, so the scientist is an ordinary user.
    sci="$("$here/scripts/slurm-scientist.sh" "$bin" "$CCAT_DATABASE_URL" "$munge_socket")"
    mkdir -p "$demo/jobs" && chmod 1777 "$demo/jobs" && chmod 755 "$demo"
    cat >"$demo/jobs/analysis.sh" <<JOB
#!/bin/bash
#SBATCH --time=5
#SBATCH --output=$demo/jobs/analysis.out
#BB_LUA ccat stage obs=obs-2026-02 location=ramses_processing
echo "staged for this job: \$CCAT_STAGED_DIR (request \$CCAT_STAGING_REQUEST)"
cd "\$CCAT_STAGED_DIR" && sha256sum -c SHA256SUMS
JOB
    chmod 755 "$demo/jobs/analysis.sh"
    say "a scientist ($sci) submits a batch job that names its data: #BB_LUA ccat stage obs=obs-2026-02"
    job="$(runuser -u "$sci" -- sbatch --parsable "$demo/jobs/analysis.sh")"
    echo "job $job: $(squeue -h -j "$job" -o '%T %r')"
    state=""
    for _ in $(seq 1 "$timeout"); do
        state="$(sacct -n -X -P -j "$job" -o State | head -1)"
        case "$state" in COMPLETED|FAILED|CANCELLED*|TIMEOUT|OUT_OF_MEMORY) break ;; esac
        sleep 1
    done
    [ "$state" = COMPLETED ] || { echo "demo: job $job ended '$state': $(squeue -h -j "$job" -o %r)" >&2; exit 1; }
    cat "$demo/jobs/analysis.out"
    # The job's end (Slurm's teardown) releases its data; the daemon then removes the directory.
    job_dir="$(sed -n 's/^staged for this job: \(.*\) (request [0-9]*)$/\1/p' "$demo/jobs/analysis.out")"
    [ -n "$job_dir" ] || { echo "demo: the job did not say where its data was staged" >&2; exit 1; }
    for _ in $(seq 1 "$timeout"); do [ -e "$job_dir" ] || break; sleep 1; done
    [ ! -e "$job_dir" ] || { echo "demo: $job_dir still there after the job ended" >&2; exit 1; }
    echo "job $job waited for its data, ran on it, and its data was removed once it ended"
fi

# What the page and /metrics said at the end, for a look afterwards (and for the tests).
on_host cologne curl -sSf "${page}metrics" >"$demo/metrics.txt" || { echo "demo: ${page}metrics did not answer" >&2; exit 1; }
on_host cologne curl -sSf "$page" >"$demo/status.html" || { echo "demo: the status page $page did not answer" >&2; exit 1; }
if [ "$keep_running" = 1 ]; then
    say "the daemon keeps running: status page $page (Ctrl-C stops it)"
    wait $daemon || true
fi
kill -TERM $daemon 2>/dev/null || true
wait $daemon || true
trap - EXIT

say "ccat status"
"$bin/ccat" status
say "ccat audit list (fixity passes and audits the daemon ran on the archives)"
"$bin/ccat" audit list
say "done in $((SECONDS - start)) s"
echo "data:  $demo (archives: S3 bucket $bucket at $endpoint, and $demo/us/archive)"
echo "logs:  $demo/daemon.log, job scripts and runner logs under $demo/state/jobs"
echo "page:  $page was the status page; its last answer is $demo/status.html, /metrics in $demo/metrics.txt"
echo "       (scripts/demo.sh $bin --keep-running, or make demo KEEP_RUNNING=1, leaves it up)"
echo "database: $CCAT_DATABASE_URL"
echo "try:   CCAT_DATABASE_URL=\"$CCAT_DATABASE_URL\" $bin/ccat status"
