#!/usr/bin/env bash
# The observatory's hosts on one machine: a network namespace per host, joined by veth links to
# one bridge, so traffic between sites crosses a network instead of a shared directory.
#
#   scripts/local-sites.sh start    build the hosts and start their services (idempotent); prints
#                                   "export ..." lines for the clients
#   scripts/local-sites.sh stop     stop the services and remove the hosts (keys and certificates
#                                   are kept)
#   scripts/local-sites.sh status   say whether the hosts exist
#   scripts/local-sites.sh client-cert ROLE
#                                   a TLS client certificate for database login ROLE (CN=ROLE);
#                                   prints "sslcert=... sslkey=..."
#   scripts/local-sites.sh destroy  stop, and delete the keys, certificates and the database
#   scripts/local-sites.sh wan on|off|status
#                                   the telescope-cologne path as the Chile-Cologne WAN (the
#                                   ccat-wan-emulator, below): CCAT_WAN_DELAY (default 100ms each
#                                   way), CCAT_WAN_RATE (500mbit), CCAT_WAN_LOSS (0.01, percent),
#                                   CCAT_WAN_QUEUE (the bottleneck's queue, default one round trip,
#                                   at least 50ms);
#                                   both hosts get Linux's default TCP (CUBIC, 6 MiB/4 MiB buffers)
#                                   unless CCAT_WAN_TCP=host; prints them
#   scripts/local-sites.sh link down|up
#                                   cut the telescope's link, and the WAN when on (an outage), or
#                                   restore it
#
# Hosts (namespace ccat-NAME, address 10.77.0.N/24 on eth0; the bridge ccat-sites has no address,
# so the machine's own namespace is not on that network):
#   telescope .10   the instrument computers and CCAT's transfer node (ccat site)
#   cologne   .20   the ops database (PostgreSQL with TLS on 10.77.0.20:5432), the daemon, the
#                   Cologne buffer, its S3 archive (moto, 127.0.0.1 inside the host) and
#                   ramses_processing
#   us        .30   the US buffer and disk archive
#   login     .40   a login node where scientists stage data
# Each host runs its own sshd on port 22 of its address; the ssh configuration $dir/ssh_config
# names them ccat-telescope, ccat-cologne, ccat-us and ccat-login (CCAT_SSH_CONFIG for runners).
# A local CA ($dir/tls/ca.crt) signs the database server's certificate (db.cologne.ccat,
# 10.77.0.20) and the clients' certificates.
#
# Everything lives under $CCAT_DEV_DIR/sites (default .ccat-dev/sites). Needs root (ip netns),
# iproute2, openssh-server, openssl and PostgreSQL's server.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${CCAT_DEV_DIR:-$repo/.ccat-dev}/sites"
tls="$dir/tls"
subnet=10.77.0
bridge=ccat-sites
hosts=(telescope cologne us login)
declare -A number=([telescope]=10 [cologne]=20 [us]=30 [login]=40)
database_host="$subnet.20"
owner_file=/run/ccat-sites/owner

die() { echo "local-sites: $*" >&2; exit 1; }
. "$repo/scripts/service-common.sh"

address() { echo "$subnet.${number[$1]}"; }
on_host() { local host="$1"; shift; ip netns exec "ccat-$host" "$@"; }
host_exists() { [ -e "/run/netns/ccat-$1" ]; }
# Whether any process runs inside one of the hosts.
hosts_in_use() {
    local host
    for host in "${hosts[@]}"; do
        if host_exists "$host" && [ -n "$(ip netns pids "ccat-$host" 2>/dev/null)" ]; then return 0; fi
    done
    return 1
}

# The network: one bridge, a veth pair per host (eth0 inside, ccat-NAME-ish outside).
build_network() {
    ip link show "$bridge" >/dev/null 2>&1 || { ip link add "$bridge" type bridge && ip link set "$bridge" up; }
    local host outside
    for host in "${hosts[@]}"; do
        outside="ccs-$host"
        if ! host_exists "$host"; then ip netns add "ccat-$host"; fi
        if ! on_host "$host" ip link show eth0 >/dev/null 2>&1; then
            ip link del "$outside" 2>/dev/null || true
            ip link add "$outside" type veth peer name eth0 netns "ccat-$host"
            ip link set "$outside" master "$bridge" up
            on_host "$host" ip addr add "$(address "$host")/24" dev eth0
            on_host "$host" ip link set eth0 up
        fi
        on_host "$host" ip link set lo up
    done
}

# certificate NAME SUBJECT [SAN]: NAME.key and NAME.crt signed by the local CA, made once.
certificate() {
    local name="$1" subject="$2" san="${3:-}"
    [ -f "$tls/$name.crt" ] && return 0
    (umask 077 && openssl req -new -newkey rsa:2048 -nodes -keyout "$tls/$name.key" -subj "$subject" -out "$tls/$name.csr" 2>/dev/null)
    local extensions="$tls/$name.ext"
    if [ -n "$san" ]; then printf 'subjectAltName=%s\n' "$san" >"$extensions"; else : >"$extensions"; fi
    openssl x509 -req -in "$tls/$name.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial \
        -days 3650 -sha256 -extfile "$extensions" -out "$tls/$name.crt" 2>/dev/null
    rm -f "$tls/$name.csr" "$extensions"
}

make_certificates() {
    mkdir -p "$tls" && chmod 700 "$tls"
    if [ ! -f "$tls/ca.crt" ]; then
        (umask 077 && openssl req -x509 -new -newkey rsa:2048 -nodes -days 3650 -keyout "$tls/ca.key" \
            -subj "/CN=ccat-data-transfer local sites CA" -out "$tls/ca.crt" 2>/dev/null)
    fi
    certificate server "/CN=db.cologne.ccat" "DNS:db.cologne.ccat,IP:$database_host"
    chmod 755 "$tls"
    chmod 644 "$tls/ca.crt"
}

start_sshd() {
    local host="$1"
    on_host "$host" env CCAT_DEV_DIR="$dir/hosts/$host" CCAT_SSHD_ADDRESS="$(address "$host")" CCAT_SSHD_PORT=22 \
        CCAT_SSHD_ALIAS="ccat-$host" "$repo/scripts/local-sshd.sh" start >/dev/null
}

start_database() {
    # Services (members of ccat_daemon, ccat_runner, ccat_instrument) log in with certificates;
    # people with scram-sha-256 passwords from their .pgpass.
    local hba="hostssl all +ccat_daemon,+ccat_runner,+ccat_instrument $subnet.0/24 cert
hostssl all all $subnet.0/24 scram-sha-256"
    on_host cologne env CCAT_DEV_DIR="$dir" CCAT_PG_LISTEN="$database_host" CCAT_PG_TLS_DIR="$tls" CCAT_PG_HBA="$hba" \
        "$repo/scripts/local-postgres.sh" start | tail -1
}

start() {
    [ "$(id -u)" = 0 ] || die "run as root: network namespaces need it"
    command -v ip >/dev/null || die "ip not found: install iproute2"
    command -v openssl >/dev/null || die "openssl not found: install openssl"
    mkdir -p "$dir"
    hold_start_lock "$dir"
    # The namespaces' names are the machine's: one checkout's hosts at a time.
    if [ -f "$owner_file" ] && [ "$(cat "$owner_file")" != "$dir" ] && host_exists cologne; then
        local owner
        owner="$(cat "$owner_file")"
        if [ ! -d "$owner" ]; then
            # Hosts of a checkout that no longer exists (removed, or seen from another mount namespace).
            echo "local-sites: removing the hosts left by $owner, which no longer exists" >&2
        elif ! hosts_in_use; then
            # Namespaces outlive the processes in them: a session that ended, or a machine whose
            # services were killed, leaves empty hosts behind.
            echo "local-sites: removing the hosts left by $owner, where nothing runs any more" >&2
        else
            die "the hosts belong to $owner and its services run in them; stop them there first (its scripts/local-sites.sh stop)"
        fi
        remove_hosts
    fi
    mkdir -p "$(dirname "$owner_file")" && echo "$dir" >"$owner_file"
    build_network
    make_certificates
    local host
    # The services started below must not inherit the start lock (descriptor 9).
    for host in "${hosts[@]}"; do start_sshd "$host" 9>&-; done
    cat "$dir"/hosts/*/sshd/ssh_config | replace_if_changed "$dir/ssh_config"
    local socket_conninfo
    socket_conninfo="$(start_database 9>&-)"
    local endpoint
    endpoint="$(on_host cologne env CCAT_DEV_DIR="$dir/hosts/cologne" "$repo/scripts/local-s3.sh" start 9>&- | sed -n 's/^export CCAT_TEST_S3_ENDPOINT=//p')"
    [ -n "$endpoint" ] || die "the S3 server on the cologne host did not start; see $dir/hosts/cologne/s3"
    echo "export CCAT_SITES_DIR=$dir"
    echo "export CCAT_SSH_CONFIG=$dir/ssh_config"
    echo "export CCAT_SITES_DATABASE='host=$database_host port=5432 sslmode=verify-full sslrootcert=$tls/ca.crt'"
    echo "export CCAT_SITES_ADMIN_DATABASE=\"$socket_conninfo\""
    echo "export CCAT_SITES_S3_ENDPOINT=$endpoint"
}

# The namespaces, their links and the bridge; whatever still runs inside a host (a runner, a job)
# ends with it.
remove_hosts() {
    local host
    for host in "${hosts[@]}"; do
        if host_exists "$host"; then
            ip netns pids "ccat-$host" 2>/dev/null | xargs -r kill -TERM 2>/dev/null || true
            ip netns del "ccat-$host"
        fi
        ip link del "ccs-$host" 2>/dev/null || true
    done
    ip link del "$bridge" 2>/dev/null || true
}

stop() {
    local host
    wan_stop
    if host_exists cologne; then
        on_host cologne env CCAT_DEV_DIR="$dir/hosts/cologne" "$repo/scripts/local-s3.sh" stop >/dev/null 2>&1 || true
    fi
    if [ -d "$dir/postgres" ]; then CCAT_DEV_DIR="$dir" "$repo/scripts/local-postgres.sh" stop 2>/dev/null || true; fi
    for host in "${hosts[@]}"; do
        [ -d "$dir/hosts/$host/sshd" ] && CCAT_DEV_DIR="$dir/hosts/$host" "$repo/scripts/local-sshd.sh" stop || true
    done
    remove_hosts
    if [ -f "$owner_file" ] && [ "$(cat "$owner_file")" = "$dir" ]; then rm -f "$owner_file"; fi
}

client_cert() {
    local role="${1:?usage: $0 client-cert ROLE}"
    [[ "$role" =~ ^[a-z_][a-z0-9_]*$ ]] || die "'$role' is not a plain role name"
    [ -f "$tls/ca.crt" ] || die "no CA yet: run '$0 start' first"
    certificate "client-$role" "/CN=$role"
    echo "sslcert=$tls/client-$role.crt sslkey=$tls/client-$role.key"
}

# The Chile-Cologne WAN: ccat-wan-emulator (bench/wan-emulator) holds a TUN device named wan0 in
# the telescope and the cologne hosts and carries every packet between them with a delay, a rate and
# random loss (user space, because kernels without netem are common on test machines). Each host
# routes the other's address through wan0, so the telescope's traffic to Cologne (its bundles, its
# database connections) crosses the WAN; traffic to the other hosts still takes the bridge.
wan_pid="$dir/wan.pid"
wan_running() { [ -f "$wan_pid" ] && kill -0 "$(cat "$wan_pid")" 2>/dev/null; }
wan_emulator() {
    local candidate
    for candidate in "${CCAT_WAN_EMULATOR:-}" "${CCAT_BIN_DIR:+$CCAT_BIN_DIR/ccat-wan-emulator}" \
        "$repo/.build/debug/ccat-wan-emulator" "$repo/.build/release/ccat-wan-emulator"; do
        [ -n "$candidate" ] && [ -x "$candidate" ] && { echo "$candidate"; return; }
    done
    die "ccat-wan-emulator is not built: run 'swift build --product ccat-wan-emulator' (or set CCAT_WAN_EMULATOR)"
}
wan_stop() {
    if wan_running; then
        local pid; pid="$(cat "$wan_pid")"
        kill -TERM "$pid" 2>/dev/null || true
        await 10 bash -c "! kill -0 $pid" || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$wan_pid" "$dir/wan.conf"
}

wan() {
    host_exists telescope || die "no hosts: run '$0 start' first"
    local delay="${CCAT_WAN_DELAY:-100ms}" rate="${CCAT_WAN_RATE:-500mbit}" loss="${CCAT_WAN_LOSS:-0.01}"
    local host peer emulator
    case "${1:-status}" in
        on)
            emulator="$(wan_emulator)"
            wan_stop
            "$emulator" --a ccat-telescope:wan0 --b ccat-cologne:wan0 --delay "$delay" --rate "$rate" --loss "$loss" \
                ${CCAT_WAN_QUEUE:+--queue "$CCAT_WAN_QUEUE"} --pid-file "$wan_pid" >"$dir/wan.log" 2>&1 &
            await 10 test -s "$wan_pid" || { cat "$dir/wan.log" >&2; die "the WAN emulator did not start (its log: $dir/wan.log)"; }
            for host in telescope cologne; do
                peer=cologne; [ "$host" = telescope ] || peer=telescope
                on_host "$host" ip link set wan0 up
                on_host "$host" ip route replace "$(address "$peer")/32" dev wan0 src "$(address "$host")"
                # Linux's own defaults (CUBIC; at most 6 MiB receive and 4 MiB send buffers), not
                # this machine's tuning, unless CCAT_WAN_TCP=host.
                if [ "${CCAT_WAN_TCP:-linux}" != host ]; then
                    # A namespace may only pick what the machine allows (a global list; adding
                    # CUBIC to it changes no socket's choice).
                    local allowed; allowed="$(sysctl -n net.ipv4.tcp_allowed_congestion_control)"
                    [[ " $allowed " == *" cubic "* ]] || sysctl -qw net.ipv4.tcp_allowed_congestion_control="$allowed cubic"
                    on_host "$host" sysctl -qw net.ipv4.tcp_congestion_control=cubic \
                        net.ipv4.tcp_rmem="4096 131072 6291456" net.ipv4.tcp_wmem="4096 16384 4194304"
                fi
            done
            echo "delay ${delay} each way, rate ${rate} each way, loss ${loss}% each way, queue ${CCAT_WAN_QUEUE:-one round trip (at least 50ms)}" > "$dir/wan.conf"
            ;;
        off) wan_stop ;;
        status) ;;
        *) die "usage: $0 wan on|off|status" ;;
    esac
    if wan_running; then
        echo "telescope <-> cologne over the emulated WAN (pid $(cat "$wan_pid")): $(cat "$dir/wan.conf")"
        echo "TCP on both hosts: $(on_host telescope sysctl -n net.ipv4.tcp_congestion_control), receive buffers $(on_host telescope sysctl -n net.ipv4.tcp_rmem | tr '\t' ' '), send buffers $(on_host telescope sysctl -n net.ipv4.tcp_wmem | tr '\t' ' ')"
    else
        echo "telescope <-> cologne over the bridge: no delay, no rate limit, no loss"
    fi
}

link() {
    host_exists telescope || die "no hosts: run '$0 start' first"
    case "${1:-}" in
        down)
            ip link set ccs-telescope down
            if wan_running; then kill -USR1 "$(cat "$wan_pid")"; fi
            echo "telescope link down: the telescope reaches no other host" ;;
        up)
            ip link set ccs-telescope up
            if wan_running; then kill -USR2 "$(cat "$wan_pid")"; fi
            # Back when the telescope reaches the cologne host again (neighbour entries recover).
            await 60 on_host telescope bash -c "exec 3<>/dev/tcp/$database_host/22" || die "the telescope does not reach $database_host a minute after the link came up"
            echo "telescope link up" ;;
        *) die "usage: $0 link down|up" ;;
    esac
}

case "${1:-}" in
    start) start ;;
    wan) wan "${2:-status}" ;;
    link) link "${2:-}" ;;
    stop) stop ;;
    status)
        for host in "${hosts[@]}"; do
            if host_exists "$host"; then echo "$host: ccat-$host $(address "$host")"; else echo "$host: absent"; exit 3; fi
        done ;;
    client-cert) client_cert "${2:-}" ;;
    destroy) stop; CCAT_DEV_DIR="$dir" "$repo/scripts/local-postgres.sh" destroy 2>/dev/null || true; rm -rf "$dir" ;;
    *) sed -n '2,39p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
