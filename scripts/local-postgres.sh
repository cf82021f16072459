#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for development, tests and the demo.
#
#   scripts/local-postgres.sh start     create (first time) and start it; prints its conninfo
#   scripts/local-postgres.sh stop      stop it (data is kept)
#   scripts/local-postgres.sh status    say whether it runs
#   scripts/local-postgres.sh conninfo  print the libpq connection string
#   scripts/local-postgres.sh destroy   stop it and delete its data
#
# The cluster lives under $CCAT_DEV_DIR/postgres (default: .ccat-dev/postgres in the repository,
# git-ignored) and listens only on a unix socket in that directory, so it never collides with a
# system PostgreSQL or another checkout. PostgreSQL refuses to run as root: when invoked as root the
# server runs as the unprivileged user $CCAT_PG_USER (default: postgres). Starting is idempotent: a
# running cluster is reused.
#
# Over the network (scripts/local-sites.sh runs one on the cologne host): CCAT_PG_LISTEN=ADDRESS
# also listens on ADDRESS, with TLS only. CCAT_PG_TLS_DIR holds server.crt, server.key and ca.crt
# (copied next to the data, owned by the server user), and CCAT_PG_HBA the pg_hba lines for
# network clients (e.g. "hostssl all all 10.77.0.0/24 cert"); any other network connection is
# refused. The unix socket keeps trusting local users, as the cluster's administrator would.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
base="${CCAT_DEV_DIR:-$repo/.ccat-dev}/postgres"
port="${CCAT_PG_PORT:-5432}"     # with a private socket directory this only names the socket file
database=ccat
superuser=ccat
state_home="${XDG_STATE_HOME:-$HOME/.local/state}/ccat"
pointer="$state_home/local-database"

die() { echo "local-postgres: $*" >&2; exit 1; }

bindir=""
if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    bindir="$(pg_config --bindir)"
fi
if [ -z "$bindir" ]; then
    newest="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    [ -n "$newest" ] && bindir="$newest"
fi
if [ -z "$bindir" ] && command -v initdb >/dev/null 2>&1; then bindir="$(dirname "$(command -v initdb)")"; fi
[ -n "$bindir" ] && [ -x "$bindir/initdb" ] || die "PostgreSQL server binaries not found: install them (Debian: apt-get install postgresql)"

server_user=""
if [ "$(id -u)" = 0 ]; then
    server_user="${CCAT_PG_USER:-postgres}"
    id "$server_user" >/dev/null 2>&1 || die "running as root, but user '$server_user' does not exist to run the server; create it or set CCAT_PG_USER"
fi

as_server() {
    if [ -n "$server_user" ]; then runuser -u "$server_user" -- "$@"; else "$@"; fi
}

# The server's files live under $base, unless the server user cannot reach it (a checkout under
# /root, say): then under /tmp, in a directory named after $base and owned by that user.
# Unix socket paths are limited to 107 bytes, so a deep checkout also moves them to /tmp.
server_root="$base"
mkdir -p "$base"
if [ -f "$base/server-root" ]; then
    server_root="$(cat "$base/server-root")"
else
    fallback="/tmp/ccat-postgres-$(id -u)-$(printf '%s' "$base" | cksum | cut -d' ' -f1)"
    if [ ${#base} -gt 80 ]; then
        server_root="$fallback"
        echo "local-postgres: $base is too long for a unix socket path; keeping the server files in $server_root (lost when /tmp is cleared)" >&2
    elif [ -n "$server_user" ]; then
        chown "$server_user" "$base"
        if ! as_server test -w "$base"; then
            server_root="$fallback"
            echo "local-postgres: user '$server_user' cannot reach $base; keeping the server files in $server_root (lost when /tmp is cleared)" >&2
        fi
    fi
    printf '%s\n' "$server_root" >"$base/server-root"
fi
owner="${server_user:-$(id -un)}"
if [ "$server_root" != "$base" ]; then
    # A predictable name in /tmp: refuse anything we did not create ourselves.
    if [ -L "$server_root" ]; then die "$server_root is a symbolic link; remove it (it was not made by this script)"; fi
    if [ -e "$server_root" ] && [ "$(stat -c %U "$server_root")" != "$owner" ]; then
        die "$server_root exists but belongs to $(stat -c %U "$server_root"), not $owner; remove it"
    fi
fi
if [ ! -d "$server_root" ]; then
    (umask 077 && mkdir -p "$server_root")
fi
if [ -n "$server_user" ]; then chown "$server_user" "$server_root" && chmod 755 "$server_root"; fi
data="$server_root/data"
run="$server_root/run"
log="$server_root/server.log"
quote_conninfo() { local v=${1//\\/\\\\}; printf "'%s'" "${v//\'/\\\'}"; }
conninfo="host=$(quote_conninfo "$run") port=$port dbname=$database user=$superuser"

running() { [ -f "$data/PG_VERSION" ] && as_server "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; }

start() {
    mkdir -p "$base"
    if [ ! -f "$data/PG_VERSION" ]; then
        as_server "$bindir/initdb" -D "$data" -U "$superuser" --auth=trust --encoding=UTF8 --locale=C >"$server_root/initdb.log" 2>&1 \
            || die "initdb failed; see $server_root/initdb.log"
        # A throwaway cluster: durability is traded for speed (tests create and drop many databases).
        cat >>"$data/postgresql.conf" <<CONF

# ccat-data-transfer development cluster (socket directory and port are given at each start)
listen_addresses = ''
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
CONF
    fi
    as_server mkdir -p "$run"
    network_options=""
    if [ -n "${CCAT_PG_LISTEN:-}" ]; then
        tls="${CCAT_PG_TLS_DIR:?CCAT_PG_LISTEN needs CCAT_PG_TLS_DIR: network connections use TLS}"
        for file in server.crt server.key ca.crt; do
            [ -r "$tls/$file" ] || die "$tls/$file is missing (CCAT_PG_TLS_DIR)"
        done
        as_server mkdir -p "$server_root/tls"
        install -o "$owner" -m 600 "$tls/server.key" "$server_root/tls/server.key"
        install -o "$owner" -m 644 "$tls/server.crt" "$tls/ca.crt" "$server_root/tls/"
        {
            echo "# written by scripts/local-postgres.sh at each start"
            echo "local all all trust"
            printf '%s\n' "${CCAT_PG_HBA:-}"
            echo "host all all 0.0.0.0/0 reject"
        } >"$server_root/pg_hba.network.conf"
        chown "$owner" "$server_root/pg_hba.network.conf"
        network_options="-c listen_addresses='$CCAT_PG_LISTEN' -c ssl=on -c ssl_cert_file='$server_root/tls/server.crt'"
        network_options="$network_options -c ssl_key_file='$server_root/tls/server.key' -c ssl_ca_file='$server_root/tls/ca.crt'"
        network_options="$network_options -c hba_file='$server_root/pg_hba.network.conf' -c log_connections=on"
    fi
    if running; then
        echo "local-postgres: already running ($data)" >&2
    else
        # No descriptor of ours reaches the server: a caller reading our output to its end (a
        # test, a command substitution) would otherwise wait for the server to exit.
        as_server "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 \
            -o "-c port=$port -c unix_socket_directories='${run//\'/\'\'}' $network_options" start </dev/null >/dev/null 2>&1 \
            || die "the server did not start; see $log"
    fi
    exists="$("$bindir/psql" "host=$(quote_conninfo "$run") port=$port dbname=postgres user=$superuser" -tAc "SELECT 1 FROM pg_database WHERE datname = '$database'")" \
        || die "cannot connect to the server on $run; see $log"
    if [ "$exists" != 1 ]; then
        "$bindir/createdb" -h "$run" -p "$port" -U "$superuser" "$database"
    fi
    # Renamed into place: a test reading it while another caller starts the cluster never sees it empty.
    printf '%s\n' "$conninfo" >"$base/conninfo.$$" && mv -f "$base/conninfo.$$" "$base/conninfo"
    # The development database for `ccat` without --database; a cluster for the hosts is not it.
    if [ -z "${CCAT_PG_LISTEN:-}" ]; then
        mkdir -p "$state_home" 2>/dev/null && printf '%s\n' "$conninfo" >"$pointer" 2>/dev/null || true
    fi
    echo "$conninfo"
}

stop() {
    if running; then
        as_server "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null
        echo "local-postgres: stopped" >&2
    else
        echo "local-postgres: not running" >&2
    fi
    if [ -f "$pointer" ] && [ "$(cat "$pointer")" = "$conninfo" ]; then rm -f "$pointer"; fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) if running; then echo "running: $conninfo"; else echo "not running"; exit 3; fi ;;
    conninfo) echo "$conninfo" ;;
    destroy) stop; rm -rf "$server_root" "$base" ;;
    *) echo "usage: $0 start|stop|status|conninfo|destroy" >&2; exit 2 ;;
esac
