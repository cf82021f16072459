#!/usr/bin/env bash
# An S3 server for development and tests: moto_server on 127.0.0.1, its pid, log and endpoint
# under $CCAT_DEV_DIR/s3 (default: .ccat-dev/s3 in the repository, git-ignored). moto keeps objects
# in memory, so a restart starts empty.
#
#   scripts/local-s3.sh start    start it (idempotent: a running one is reused, a busy one waited
#                                for, never killed); prints the endpoint
#   scripts/local-s3.sh stop     stop it
#   scripts/local-s3.sh status   say whether it answers
#   scripts/local-s3.sh env      print the environment clients need (endpoint and test keys)
#
# moto_server is taken from PATH, else from the virtualenv .ccat-dev/venv that .ci/run creates
# ('python3 -m venv .ccat-dev/venv && .ccat-dev/venv/bin/pip install "moto[server]"'). The port is
# derived from the checkout's path unless CCAT_S3_PORT sets it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dev="${CCAT_DEV_DIR:-$repo/.ccat-dev}"
base="$dev/s3"
port="${CCAT_S3_PORT:-$((24000 + $(printf '%s' "$base" | cksum | cut -d' ' -f1) % 2000))}"
endpoint="http://127.0.0.1:$port"

die() { echo "local-s3: $*" >&2; exit 1; }
. "$repo/scripts/service-common.sh"

server="$(command -v moto_server || true)"
if [ -z "$server" ] && [ -x "$dev/venv/bin/moto_server" ]; then server="$dev/venv/bin/moto_server"; fi

answers() { curl -s -o /dev/null --max-time 2 "$endpoint/" 2>/dev/null; }
# Written under another name and renamed: a concurrent reader never sees it empty.
record_endpoint() { echo "$endpoint" > "$base/endpoint.$$" && mv -f "$base/endpoint.$$" "$base/endpoint"; }
alive() { process_is "$base/pid" moto_server; }

print_env() {
    echo "export CCAT_TEST_S3_ENDPOINT=$endpoint"
    # moto accepts any keys; these name the test identity and are not secrets.
    echo "export AWS_ACCESS_KEY_ID=ccat-test AWS_SECRET_ACCESS_KEY=ccat-test-secret AWS_DEFAULT_REGION=us-east-1"
}

case "${1:-}" in
start)
    mkdir -p "$base"
    hold_start_lock "$base"
    if alive; then
        # A running server is shared by every test and demo on this checkout, and moto keeps
        # objects in memory: a busy one is waited for, never killed and restarted from here.
        await 60 answers && { record_endpoint; print_env; exit 0; }
        die "moto_server (pid $(cat "$base/pid")) runs but has not answered on $endpoint for a minute; see $base/moto.log, or restart it with '$0 stop' then '$0 start'"
    fi
    [ -n "$server" ] || die "moto_server not found: pip install 'moto[server]' (or let .ci/run create .ccat-dev/venv)"
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port is already in use on 127.0.0.1; stop what uses it or set CCAT_S3_PORT"
    fi
    setsid "$server" -H 127.0.0.1 -p "$port" >"$base/moto.log" 2>&1 < /dev/null 9>&- &
    echo $! > "$base/pid"
    await 60 answers && { record_endpoint; print_env; exit 0; }
    die "moto_server did not answer on $endpoint within 60 s; see $base/moto.log"
    ;;
stop)
    stop_process "$base/pid" moto_server
    rm -f "$base/pid" "$base/endpoint"
    ;;
status)
    if alive && answers; then echo "S3 test server at $endpoint (pid $(cat "$base/pid"))"; else echo "not running"; exit 1; fi
    ;;
env)
    print_env
    ;;
*)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
