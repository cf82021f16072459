# Helpers sourced by the local-*.sh service scripts.

# One start at a time: tests and demos call the scripts concurrently. The lock is descriptor 9;
# a daemon started while it is held must get `9>&-`, or it would hold the lock for its lifetime.
hold_start_lock() {
    exec 9>"$1/start.lock"
    flock 9
}

# replace_if_changed FILE: standard input becomes FILE, by rename, and only if it differs, so a
# client reading FILE meanwhile never sees it empty or half written.
replace_if_changed() {
    local new="$1.new.$$"
    cat >"$new"
    if cmp -s "$new" "$1"; then rm -f "$new"; else mv -f "$new" "$1"; fi
}

# process_is PIDFILE NAME: the pid file names a live process whose command line contains NAME
# (a stale pid file whose number now belongs to another process does not count).
process_is() {
    local pid
    [ -f "$1" ] || return 1
    pid="$(cat "$1")"
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}

# await SECONDS COMMAND...: runs COMMAND (quietly) every 0.2 s until it succeeds, for at most
# SECONDS of wall time (a slow COMMAND does not stretch the wait); fails if it never did.
await() {
    local end=$((SECONDS + $1)); shift
    while :; do
        "$@" >/dev/null 2>&1 && return 0
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.2
    done
}

# stop_process PIDFILE NAME: SIGTERM to the live NAME the pid file names, and SIGKILL if it has not
# ended 10 s later.
stop_process() {
    process_is "$1" "$2" || return 0
    local pid; pid="$(cat "$1")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
}
