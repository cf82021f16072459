#!/usr/bin/env bash
# Installs built binaries and everything an installation needs beside them. Called by
# `make install` and `make deb`; the tests call it on the debug build.
#
#   scripts/install.sh BIN_DIR [PREFIX]
#
# BIN_DIR holds ccat, ccat-runner and generate-manual (swift-argument-parser's manual generator,
# `swift build --product generate-manual`). PREFIX defaults to /usr/local. Environment:
#   DESTDIR           staging root the tree is written under (packaging), default none
#   SYSTEMD_UNIT_DIR  default PREFIX/lib/systemd/system (the Debian package uses /lib/systemd/system)
#   SYSUSERS_DIR      default PREFIX/lib/sysusers.d
#   SOURCE_DATE_EPOCH the date printed in the man pages (default: the last commit's)
#
# The layout:
#   PREFIX/bin/ccat, PREFIX/bin/ccat-runner
#   PREFIX/share/ccat/migrations/*.sql      the schema (`ccat db migrate` reads it)
#   PREFIX/share/ccat/jobscripts/*          the job-script templates (`ccat daemon` reads them)
#   PREFIX/share/man/man1/ccat*.1.gz         one page per command and subcommand
#   bash, zsh and fish completions
#   PREFIX/share/doc/ccat-data-transfer/     README.md, docs/ (the guides) and examples/ (configuration, topology,
#                                            Prometheus alert rules, Grafana dashboard)
#   SYSTEMD_UNIT_DIR/ccat-daemon.service, SYSUSERS_DIR/ccat.conf (the `ccat` service user)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:?usage: scripts/install.sh BIN_DIR [PREFIX]}"
prefix="${2:-/usr/local}"
dest="${DESTDIR:-}"
unit_dir="${SYSTEMD_UNIT_DIR:-$prefix/lib/systemd/system}"
sysusers_dir="${SYSUSERS_DIR:-$prefix/lib/sysusers.d}"
doc_dir="$prefix/share/doc/ccat-data-transfer"

die() { echo "install: $*" >&2; exit 1; }
case "$prefix" in /*) ;; *) die "PREFIX must be an absolute path (got '$prefix')" ;; esac
for program in ccat ccat-runner generate-manual; do
    [ -x "$bin/$program" ] || die "$bin/$program is missing; build it first ('make install' does: swift build -c release, and --product generate-manual)"
done

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH="$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)"
fi
manual_date="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)"

d() { install -d -m 755 "$dest$1"; }
d "$prefix/bin"
d "$prefix/share/ccat/migrations"
d "$prefix/share/ccat/jobscripts"
d "$prefix/share/ccat/slurm"
d "$prefix/share/man/man1"
d "$doc_dir/examples"
d "$unit_dir"
d "$sysusers_dir"

install -m 755 "$bin/ccat" "$bin/ccat-runner" "$dest$prefix/bin/"
install -m 644 "$repo"/Sources/OpsDB/Migrations/*.sql "$dest$prefix/share/ccat/migrations/"
install -m 644 "$repo"/jobscripts/* "$dest$prefix/share/ccat/jobscripts/"
# Slurm's burst-buffer script for '#BB_LUA ccat stage' directives, and the settings it reads beside
# it (an administrator copies both next to slurm.conf: docs/admin-guide.md, "Slurm-native staging").
install -m 644 "$repo/etc/slurm/burst_buffer.lua" "$dest$prefix/share/ccat/slurm/"
printf 'ccat=%s\nCCAT_CONFIG=/etc/ccat/ccat.yaml\n' "$prefix/bin/ccat" >"$dest$prefix/share/ccat/slurm/ccat_burst_buffer.conf"
chmod 644 "$dest$prefix/share/ccat/slurm/ccat_burst_buffer.conf"

# Man pages: one per command and subcommand (ccat.1, ccat.stage.request.1, ...), generated from the
# same definitions as --help, then linked under the names man users type (ccat-stage-request).
pages="$(mktemp -d)"
trap 'rm -rf "$pages"' EXIT
for program in ccat ccat-runner; do
    "$bin/generate-manual" "$bin/$program" --multi-page --date "$manual_date" --section 1 \
        --authors "the ccat-data-transfer developers" --output-directory "$pages" >/dev/null \
        || die "generate-manual failed for $program"
done
rm -f "$pages/ccat.help.1" "$pages/ccat-runner.help.1"
for page in "$pages"/*.1; do
    name="$(basename "$page")"
    dashed="${name%.1}"; dashed="${dashed//./-}.1"
    # The page's title, its NAME line (what whatis and apropos index) and its cross references get
    # the dashed name; the synopsis keeps the command as it is typed ("ccat stage request").
    awk -v dashed="${dashed%.1}" '
        /^\.(Dt|Xr) / { line = $0; while (match(line, /[A-Za-z0-9]\.[A-Za-z]/)) { line = substr(line, 1, RSTART) "-" substr(line, RSTART + 2) }; print line; next }
        /^\.Sh / { section = $0 }
        /^\.Nm "/ && section == ".Sh NAME" { typed = substr($0, 5); print ".Nm " dashed; next }
        /^\.Nm$/ && typed != "" { print ".Nm " typed; next }
        { print }
    ' "$page" | gzip -9n >"$dest$prefix/share/man/man1/$dashed.gz"
    chmod 644 "$dest$prefix/share/man/man1/$dashed.gz"
done

# Completions, where each shell looks for them. zsh's default path holds vendor-completions for
# /usr and site-functions for other prefixes.
if [ "$prefix" = /usr ]; then zsh_dir="$prefix/share/zsh/vendor-completions"; else zsh_dir="$prefix/share/zsh/site-functions"; fi
d "$prefix/share/bash-completion/completions"
d "$zsh_dir"
d "$prefix/share/fish/vendor_completions.d"
for program in ccat ccat-runner; do
    # Sourced by bash-completion, never run: no interpreter line.
    "$bin/$program" --generate-completion-script bash | sed '1{/^#!/d}' >"$dest$prefix/share/bash-completion/completions/$program"
    "$bin/$program" --generate-completion-script zsh >"$dest$zsh_dir/_$program"
    "$bin/$program" --generate-completion-script fish >"$dest$prefix/share/fish/vendor_completions.d/$program.fish"
done
chmod 644 "$dest$prefix/share/bash-completion/completions/"ccat* "$dest$zsh_dir/"_ccat* "$dest$prefix/share/fish/vendor_completions.d/"ccat*

install -m 644 "$repo/README.md" "$dest$doc_dir/"
install -d -m 755 "$dest$doc_dir/docs"
install -m 644 "$repo"/docs/*.md "$dest$doc_dir/docs/"
install -m 644 "$repo/etc/ccat.example.yaml" "$repo/etc/topology.example.yaml" "$repo/etc/prometheus/ccat-alerts.yaml" \
    "$repo/etc/grafana/ccat-dashboard.json" "$dest$doc_dir/examples/"

sed -e "s|@BINDIR@|$prefix/bin|g" -e "s|@DOCDIR@|$doc_dir|g" "$repo/etc/systemd/ccat-daemon.service.in" \
    >"$dest$unit_dir/ccat-daemon.service"
chmod 644 "$dest$unit_dir/ccat-daemon.service"
install -m 644 "$repo/etc/systemd/ccat.sysusers" "$dest$sysusers_dir/ccat.conf"

echo "installed ccat $("$bin/ccat" --version) under $dest$prefix"
