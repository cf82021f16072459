#!/bin/bash
# Prepares the single-node Slurm cluster for Slurm-native staging by a scientist, for the demo and
# the benchmark (both as root):
#   - a unix user (default ccat_demo_scientist, group ccat_demo: add that group to the PROCESSING
#     location's staging groups) with a Slurm association and a database login in ccat_scientist;
#   - ccat_burst_buffer.conf beside slurm.conf: the burst-buffer script runs BIN/ccat as the
#     Slurm user (root here, whose database login must exist) against DATABASE.
#
#   scripts/slurm-scientist.sh BIN_DIR DATABASE_URL MUNGE_SOCKET [USER]
set -euo pipefail

bin="$(cd "${1:?usage: scripts/slurm-scientist.sh BIN_DIR DATABASE_URL MUNGE_SOCKET [USER]}" && pwd)"
database="${2:?database URL}"
munge_socket="${3:?munge socket}"
sci="${4:-ccat_demo_scientist}"
: "${SLURM_CONF:?set SLURM_CONF to the slurm.conf of the cluster (scripts/local-slurm.sh start prints it)}"

getent group ccat_demo >/dev/null || groupadd ccat_demo
id "$sci" >/dev/null 2>&1 || useradd -M -N -g ccat_demo -s /usr/sbin/nologin "$sci"
sacctmgr -n -P list user format=user | grep -qx "$sci" || sacctmgr -i add user "$sci" Account=ccat >/dev/null
psql -qAt -d "$database" -v who="$sci" <<'SQL' >/dev/null
SELECT format('CREATE ROLE %I LOGIN', :'who') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'who') \gexec
SELECT format('GRANT ccat_scientist TO %I', :'who') \gexec
SQL
printf 'ccat=%s\nCCAT_DATABASE_URL=%s user=%s\nCCAT_MUNGE_SOCKET=%s\n' "$bin/ccat" "$database" "$(id -un)" "$munge_socket" \
    >"$(dirname "$SLURM_CONF")/ccat_burst_buffer.conf"
echo "$sci"
