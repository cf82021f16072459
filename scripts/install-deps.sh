#!/usr/bin/env bash
# What this project needs from the system, in one place: `make demo`, `make test`, `make deb` and
# .ci/run all call this script, each with the set it needs.
#
#   scripts/install-deps.sh [build|demo|test|package] [--check]
#
#   build    the four C libraries the binaries link (and pkg-config, make)
#   demo     build + PostgreSQL, munge, rsync, and the S3 test server (moto) for `make demo`
#   test     demo + the single-node Slurm cluster (Slurm, MariaDB), sshd and aws-cli for `make test`
#   package  build + what `make deb` and its checks use (dpkg-dev, lintian, man-db)
#
# As root, whatever is missing is installed with apt-get, and moto[server] plus aws-cli into the
# checkout's virtualenv (.ccat-dev/venv); what is present is left alone, so a second run costs a
# few dpkg-query calls. Not as root, it prints the one command that installs the missing packages
# and exits with status 1; the virtualenv needs no root and is made either way.
# --check only reports what is missing (exit 1 if anything is).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${CCAT_DEV_DIR:-$repo/.ccat-dev}/venv"

# Debian 12 package names. The C libraries' -dev packages are the ones Package.swift's providers name.
build_packages=(pkg-config make libpq-dev libarchive-dev libcurl4-openssl-dev libmunge-dev)
# The ops database, munged for staging requests, rsync for transfers, curl for the service checks,
# python3-venv for the S3 test server's virtualenv.
demo_packages=(postgresql munge rsync curl python3-venv)
# The single-node Slurm cluster (slurmdbd keeps its accounting in MariaDB) and an ssh server for
# transfers to "another host" over loopback; headless Chromium opens the daemon's status page;
# iproute2 (ip netns) and openssl build the hosts of scripts/local-sites.sh and their certificates
# (its emulated WAN is ccat-wan-emulator, built with the tests).
test_packages=(slurm-wlm slurmdbd mariadb-server openssh-server openssh-client chromium iproute2 openssl)
# dpkg-deb and dpkg-shlibdeps, lintian for the package's checks, man-db for `man` on the pages.
package_packages=(dpkg-dev lintian man-db)
# From PyPI, into the virtualenv: the S3 server the demo and the tests use, aws-cli for the
# interoperability tests, Prometheus' own text parser for /metrics and an SMTP server for alerts.
demo_python=("moto[server]")
test_python=("moto[server]" awscli prometheus_client aiosmtpd)

set_name="test"
check_only=0
for arg in "$@"; do
    case "$arg" in
        build|demo|test|package) set_name="$arg" ;;
        --check) check_only=1 ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install-deps: unknown argument '$arg' (build, demo, test, package or --check)" >&2; exit 2 ;;
    esac
done

packages=("${build_packages[@]}")
python=()
case "$set_name" in
    demo) packages+=("${demo_packages[@]}"); python=("${demo_python[@]}") ;;
    test) packages+=("${demo_packages[@]}" "${test_packages[@]}"); python=("${test_python[@]}") ;;
    package) packages+=("${package_packages[@]}") ;;
esac

command -v dpkg-query >/dev/null 2>&1 || {
    echo "install-deps: this script knows Debian's package names and needs dpkg; install the equivalents of: ${packages[*]}" >&2
    exit 1
}

missing=()
for p in "${packages[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)"
    [ "$status" = installed ] || missing+=("$p")
done

# The virtualenv's programs: moto_server, and aws where aws-cli is wanted. A moto_server or aws
# already on PATH is used as it is (scripts/local-s3.sh and the tests look there first).
python_missing=()
for spec in ${python[@]+"${python[@]}"}; do
    case "$spec" in
        moto*) program=moto_server ;;
        awscli) program=aws ;;
        *) # A module: present when the virtualenv's python imports it.
            [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import $spec" 2>/dev/null || python_missing+=("$spec")
            continue ;;
    esac
    command -v "$program" >/dev/null 2>&1 || [ -x "$venv/bin/$program" ] || python_missing+=("$spec")
done

if [ "$check_only" = 1 ]; then
    [ ${#missing[@]} -eq 0 ] || echo "install-deps: missing Debian packages: ${missing[*]}"
    [ ${#python_missing[@]} -eq 0 ] || echo "install-deps: missing in $venv: ${python_missing[*]}"
    [ ${#missing[@]} -eq 0 ] && [ ${#python_missing[@]} -eq 0 ]
    exit
fi

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        cat >&2 <<EOF
install-deps: '$set_name' needs Debian packages that are not installed: ${missing[*]}
Install them as root, then run this again:

    sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}

EOF
        exit 1
    fi
    echo "install-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # Services that packages would start (munge, MariaDB, sshd, Slurm) are started by this
    # project's scripts with their own configuration, in their own directories.
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ${#python_missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${python_missing[*]} into $venv" >&2
    [ -x "$venv/bin/pip" ] || python3 -m venv "$venv" || {
        echo "install-deps: could not create $venv: python3 -m venv needs Debian's python3-venv" >&2
        exit 1
    }
    "$venv/bin/pip" install -q --disable-pip-version-check "${python_missing[@]}"
fi
