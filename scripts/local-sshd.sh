#!/usr/bin/env bash
# An ssh server on 127.0.0.1 for tests of transfers to "another host" (rsync over ssh): its own
# host key, client key, authorized_keys, port and pid under $CCAT_DEV_DIR/sshd (default
# .ccat-dev/sshd). The client side is an ssh configuration with the alias ccat-test-remote; the
# runner uses it through CCAT_SSH_CONFIG. Must run as root (sshd needs privilege separation).
# CCAT_SSHD_ADDRESS and CCAT_SSHD_ALIAS change the address and the alias (scripts/local-sites.sh
# starts one per host, inside the host's network namespace).
#
#   scripts/local-sshd.sh start     start it (idempotent); prints "export CCAT_SSH_CONFIG=..."
#   scripts/local-sshd.sh stop      stop it (keys are kept)
#   scripts/local-sshd.sh config    print the client configuration's path
#   scripts/local-sshd.sh destroy   stop it and delete its keys
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${CCAT_DEV_DIR:-$repo/.ccat-dev}/sshd"
port="${CCAT_SSHD_PORT:-$((22000 + $(printf '%s' "$dir" | cksum | cut -d' ' -f1) % 1000))}"
config="$dir/ssh_config"
address="${CCAT_SSHD_ADDRESS:-127.0.0.1}"
alias="${CCAT_SSHD_ALIAS:-ccat-test-remote}"

die() { echo "local-sshd: $*" >&2; exit 1; }
. "$repo/scripts/service-common.sh"
pid_alive() { process_is "$dir/sshd.pid" sshd; }
answers() { ssh -F "$config" -o ConnectTimeout=3 "$alias" true >/dev/null 2>&1; }

start() {
    [ "$(id -u)" = 0 ] || die "run as root: sshd needs privilege separation"
    [ -x /usr/sbin/sshd ] || die "sshd not found: install openssh-server (Debian)"
    mkdir -p "$dir" /run/sshd
    chmod 700 "$dir"
    hold_start_lock "$dir"
    [ -f "$dir/host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
    [ -f "$dir/client_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key"
    # Rewritten only when they change, by rename: a running sshd and ssh clients read them.
    replace_if_changed "$dir/authorized_keys" <"$dir/client_key.pub"
    # known_hosts names a host on port 22 bare, on any other port as [address]:port.
    known="[$address]:$port"; [ "$port" != 22 ] || known="$address"
    printf '%s %s\n' "$known" "$(cut -d' ' -f1,2 "$dir/host_key.pub")" | replace_if_changed "$dir/known_hosts"
    replace_if_changed "$dir/sshd_config" <<CONF
Port $port
ListenAddress $address
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
CONF
    replace_if_changed "$config" <<CONF
Host $alias
    HostName $address
    Port $port
    User $(id -un)
    IdentityFile $dir/client_key
    IdentitiesOnly yes
    StrictHostKeyChecking yes
    UserKnownHostsFile $dir/known_hosts
CONF
    if pid_alive; then
        # A running sshd may be serving another test's copy: a busy one is waited for, never
        # killed and restarted from here.
        if await 60 answers; then echo "export CCAT_SSH_CONFIG=$config"; return; fi
        die "sshd (pid $(cat "$dir/sshd.pid")) runs but has not answered on $address:$port for a minute; see $dir/sshd.log, or restart it with '$0 stop' then '$0 start'"
    fi
    if (exec 3<>"/dev/tcp/$address/$port") 2>/dev/null; then
        die "port $port is already in use on $address; stop what uses it or set CCAT_SSHD_PORT"
    fi
    /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log" 9>&- || die "sshd did not start; see $dir/sshd.log"
    if await 60 answers; then echo "export CCAT_SSH_CONFIG=$config"; return; fi
    die "sshd did not answer on $address:$port within 60 s; see $dir/sshd.log"
}

stop() { stop_process "$dir/sshd.pid" sshd; }

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    config) echo "$config" ;;
    destroy) stop; rm -rf "$dir" ;;
    *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
