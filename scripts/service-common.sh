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
