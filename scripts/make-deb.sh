#!/usr/bin/env bash
# Builds dist/ccat-data-transfer_<version>_<arch>.deb from the install tree of scripts/install.sh.
# Called by `make deb`.
#
#   scripts/make-deb.sh [BIN_DIR]
#
# Without BIN_DIR, release binaries are built with the Swift runtime linked statically
# (--static-swift-stdlib, in .build-deb/), so the package needs no Swift toolchain on the target;
# it depends on the system libraries dpkg-shlibdeps finds in the binaries (libpq5, libarchive13,
# libcurl4, libmunge2, ...). With BIN_DIR (the tests pass their debug build) those binaries are
# packaged as they are. Environment: DIST (output directory, default dist/), SWIFT.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
swift="${SWIFT:-swift}"
dist="${DIST:-$repo/dist}"
package=ccat-data-transfer
# Who answers for this build of the package (Debian wants a reachable address).
maintainer="${DEB_MAINTAINER:-ccat-data-transfer developers <ccat-data-transfer@localhost>}"
die() { echo "make-deb: $*" >&2; exit 1; }
for tool in dpkg-deb dpkg-shlibdeps dpkg-architecture; do
    command -v "$tool" >/dev/null || die "$tool not found: install dpkg-dev (scripts/install-deps.sh package)"
done

version="$(sed -n 's/^public let ccatVersion = "\(.*\)"$/\1/p' Sources/CCatCLI/LinkedLibraries.swift)"
[ -n "$version" ] || die "cannot read ccatVersion from Sources/CCatCLI/LinkedLibraries.swift"
arch="$(dpkg-architecture -qDEB_HOST_ARCH)"

if [ $# -ge 1 ]; then
    bin="$1"
else
    scratch="$repo/.build-deb"
    for product in ccat ccat-runner; do
        $swift build -c release --static-swift-stdlib --scratch-path "$scratch" --product "$product"
    done
    $swift build -c release --scratch-path "$scratch" --product generate-manual
    bin="$($swift build -c release --scratch-path "$scratch" --show-bin-path)"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/root"
DESTDIR="$root" SYSTEMD_UNIT_DIR=/lib/systemd/system SYSUSERS_DIR=/usr/lib/sysusers.d \
    "$repo/scripts/install.sh" "$bin" /usr >/dev/null
# Symbols stay in the build tree; the package carries stripped binaries.
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/ccat" "$root/usr/bin/ccat-runner"

doc="$root/usr/share/doc/$package"
date_rfc="$(date -u -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")"
gzip -9n >"$doc/changelog.gz" <<EOF
$package ($version) unstable; urgency=medium

  * Built from $(git rev-parse --short HEAD 2>/dev/null || echo "a source tree") of $package.

 -- $maintainer  $date_rfc
EOF
cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: $package
Comment: Data management for the CCAT observatory. The Swift runtime and the Swift packages
 listed in docs/developer-guide.md (swift-argument-parser, swift-log, Yams, swift-mustache, swift-subprocess,
 swift-crypto, swift-service-lifecycle) are linked into the binaries; each is under the
 Apache-2.0 licence (Yams: MIT), whose texts are in their sources.

Files: *
Copyright: $(date -u -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}" +%Y) the ccat-data-transfer developers
License: see the project's repository
EOF
# What lintian reports that is so by design.
mkdir -p "$root/usr/share/lintian/overrides"
cat >"$root/usr/share/lintian/overrides/$package" <<EOF
# Templates of job scripts: rendered by ccat daemon into executable scripts, never run themselves.
$package: script-not-executable [usr/share/ccat/jobscripts/default.sh.mustache]
# libyaml is compiled into Yams, the YAML parser linked statically like every Swift package.
$package: embedded-library libyaml [usr/bin/ccat]
$package: embedded-library libyaml [usr/bin/ccat-runner]
EOF
find "$root/usr/share/doc" "$root/usr/share/lintian" -type f -exec chmod 644 {} +

# Runtime dependencies: what the binaries link, as dpkg-shlibdeps maps it to packages.
mkdir -p "$work/shlibs/debian" "$root/DEBIAN"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$package" "$package" >"$work/shlibs/debian/control"
shlibdeps_options=()
if ldd "$root/usr/bin/ccat" | grep -q libswiftCore; then
    # No Debian package provides the toolchain's runtime: it is left out of Depends.
    echo "make-deb: warning: $bin/ccat links the Swift runtime dynamically; the package then needs a Swift toolchain at the same path on the target" >&2
    shlibdeps_options+=(--ignore-missing-info)
fi
depends="$(cd "$work/shlibs" && dpkg-shlibdeps -O ${shlibdeps_options[@]+"${shlibdeps_options[@]}"} "$root/usr/bin/ccat" "$root/usr/bin/ccat-runner" | sed -n 's/^shlibs:Depends=//p')" \
    || die "dpkg-shlibdeps failed on the binaries"
[ -n "$depends" ] || die "dpkg-shlibdeps found no dependencies for the binaries"

mkdir -p "$root/DEBIAN"
cat >"$root/DEBIAN/control" <<EOF
Package: $package
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: $depends, adduser
Recommends: rsync, openssh-client, munge
Suggests: postgresql, slurm-client
Section: science
Priority: optional
Description: data management for the CCAT observatory
 Raw files written by the instruments at the telescope are packaged, bundled,
 moved between sites, unpacked and verified, archived at every long-term
 archive site (S3 or disk), staged on demand for scientists and deleted from
 temporary locations once safely archived. PostgreSQL records everything; the
 work runs as Slurm batch jobs (or on an embedded local scheduler).
 .
 This package holds the ccat command (daemon, administration, staging) and
 ccat-runner (what batch jobs run), their man pages and shell completions,
 and a systemd unit for the daemon.
EOF

cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    # The service user the systemd unit runs as; its home is the unit's StateDirectory.
    if ! getent passwd ccat >/dev/null; then
        adduser --system --group --home /var/lib/ccat --gecos "ccat-data-transfer service" ccat >/dev/null
        chmod 0700 /var/lib/ccat
    fi
    if [ -d /run/systemd/system ]; then systemctl --system daemon-reload >/dev/null || true; fi
    # Not enabled or started here: the daemon needs /etc/ccat/ccat.yaml and a migrated database
    # first (docs/admin-guide.md: Installing).
fi
EOF
cat >"$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    deb-systemd-invoke stop ccat-daemon.service >/dev/null || true
fi
EOF
cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl --system daemon-reload >/dev/null || true; fi
# Job scripts, logs and the local scheduler's state; the service user is kept, as Debian keeps
# system users (files elsewhere may still belong to it).
if [ "$1" = purge ]; then rm -rf /var/lib/ccat; fi
EOF
chmod 755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

mkdir -p "$dist"
deb="$dist/${package}_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
