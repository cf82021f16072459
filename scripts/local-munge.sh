#!/usr/bin/env bash
# munged for development and tests: signs and decodes the credentials of staging requests, and
# authenticates the local Slurm cluster. Each instance has its own key, socket and state under
# $CCAT_DEV_DIR/munge/<instance> (default: .ccat-dev/munge/default in the repository).
#
#   scripts/local-munge.sh start [INSTANCE]    start it (idempotent); prints its socket path
#   scripts/local-munge.sh stop [INSTANCE]     stop it (the key is kept)
#   scripts/local-munge.sh socket [INSTANCE]   print the socket path
#   scripts/local-munge.sh destroy [INSTANCE]  stop it and delete its key
#
# Two instances have two different keys: a credential of one is forged for the other (tests use
# this). The socket's directory is world-searchable so every local user can sign requests.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
instance="${2:-default}"
[[ "$instance" =~ ^[a-z][a-z0-9_-]{0,31}$ ]] || { echo "local-munge: instance names are lower-case letters, digits, - and _" >&2; exit 2; }
dir="${CCAT_DEV_DIR:-$repo/.ccat-dev}/munge/$instance"
socket="$dir/munge.socket"

die() { echo "local-munge: $*" >&2; exit 1; }
. "$repo/scripts/service-common.sh"

pid_alive() { process_is "$dir/munged.pid" munged; }
answers() { [ -S "$socket" ] && munge -n -S "$socket"; }

start() {
    command -v munged >/dev/null && command -v mungekey >/dev/null || die "munged not found: install munge (Debian: apt-get install munge libmunge-dev)"
    mkdir -p "$dir"
    chmod 755 "$dir" "$(dirname "$dir")"
    hold_start_lock "$dir"
    if pid_alive; then
        # A running munged is shared by tests, the demo and Slurm: a busy one is waited for,
        # never killed and restarted from here.
        if await 60 answers; then echo "$socket"; return; fi
        die "munged (pid $(cat "$dir/munged.pid")) runs but has not answered on $socket for a minute; see $dir/munged.log, or restart it with '$0 stop' then '$0 start'"
    fi
    [ -f "$dir/munge.key" ] || mungekey -c -k "$dir/munge.key" >/dev/null
    chmod 600 "$dir/munge.key"
    # munged refuses a key or directories it finds unsafe; --force accepts a development setup.
    munged --force --socket="$socket" --key-file="$dir/munge.key" --pid-file="$dir/munged.pid" \
        --log-file="$dir/munged.log" --seed-file="$dir/munged.seed" >/dev/null 2>&1 9>&- \
        || die "munged did not start; see $dir/munged.log"
    if await 60 answers; then echo "$socket"; return; fi
    die "munged did not answer on $socket within 60 s; see $dir/munged.log"
}

stop() { stop_process "$dir/munged.pid" munged; }

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    socket) echo "$socket" ;;
    destroy) stop; rm -rf "$dir" ;;
    *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
