#!/usr/bin/env bash
# test_package: the .deb as an operator meets it. Builds streamd_<version>_<arch>.deb with cpack from
# BUILD_DIR (a tree configured with -DCMAKE_INSTALL_PREFIX=/usr; without an argument the script
# configures and builds one in a temp dir), installs it the way the README's operator does
# (`apt-get install ./streamd_*.deb`: dpkg underneath, apt brings the computed Depends), checks what a
# user runs and reads (streamd -t, --version, streamctl --help, man -w for the three pages, the system
# user, the config's owner and mode, the unit with systemd-analyze verify, a real start as the streamd
# user with a SIGHUP reload), removes it (the conffile stays), purges it and checks that the user,
# /etc/streamd and the unit's enable links are gone.
#
# Needs root on Debian (exits 77 = skipped otherwise). It leaves the machine as it found it: it refuses
# to run when a streamd package or user already exists, and purges the package on any exit.
#
#   tests/package/test_package.sh [BUILD_DIR]
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:-}
export DEBIAN_FRONTEND=noninteractive
passed=0
failed=0

ok() { printf 'ok - %s\n' "$*"; passed=$((passed + 1)); }
fail() {
  printf 'not ok - %s\n' "$*" >&2
  failed=$((failed + 1))
}
# check DESCRIPTION COMMAND...: runs COMMAND, counts the result, never stops the script.
check() {
  local what=$1
  shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}
skip() {
  printf 'skipped: %s\n' "$*"
  exit 77
}

[ "$(id -u)" -eq 0 ] || skip "needs root (installs and purges a package)"
command -v dpkg >/dev/null && command -v apt-get >/dev/null || skip "not a Debian system"
command -v cpack >/dev/null || skip "cpack not found"

if dpkg-query -W -f='${Status}' streamd 2>/dev/null | grep -q 'installed\|config-files'; then
  echo "a streamd package is already on this machine: purge it first (apt-get purge streamd)" >&2
  exit 1
fi
if getent passwd streamd >/dev/null || getent group streamd >/dev/null || [ -e /etc/streamd ]; then
  echo "a streamd user, group or /etc/streamd exists without the package: this test would remove it" >&2
  exit 1
fi

WORK=$(mktemp -d /tmp/streamd-package-test.XXXXXX)
SERVER_PID=
cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ]; then kill -KILL "$SERVER_PID" 2>/dev/null || true; fi
  if dpkg-query -W -f='${Status}' streamd 2>/dev/null | grep -q 'installed\|config-files\|half'; then
    echo "cleanup: purging streamd" >&2
    apt-get purge -y streamd </dev/null >/dev/null 2>&1 || dpkg --purge --force-all streamd >/dev/null 2>&1 || true
  fi
  # None of these existed when the test started (checked above): whatever a broken postrm left goes.
  for path in /etc/streamd/streamd.conf /etc/streamd; do
    dpkg-statoverride --remove "$path" >/dev/null 2>&1 || true
  done
  if getent passwd streamd >/dev/null; then userdel streamd || true; fi
  if getent group streamd >/dev/null; then groupdel streamd || true; fi
  rm -rf /etc/streamd
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

# ---- build the package ----
if [ -z "$BUILD" ]; then
  BUILD=$WORK/build
  cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DBUILD_TESTING=OFF >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" >/dev/null
fi
version=$(sed -n 's/^#define SD_VERSION "\(.*\)"$/\1/p' "$BUILD/generated/sd_version.h")
project_version=$(sed -n 's/^project(streamd VERSION \([0-9.]*\) .*/\1/p' "$SRC/CMakeLists.txt")
check "sd_version.h carries the CMake project version ($project_version)" [ "$version" = "$project_version" ]
arch=$(dpkg --print-architecture)
cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$WORK/pkg" >"$WORK/cpack.log" 2>&1 || {
  cat "$WORK/cpack.log" >&2
  exit 1
}
deb=$WORK/pkg/streamd_${version}_${arch}.deb
check "cpack made $(basename "$deb")" [ -f "$deb" ]
[ -f "$deb" ] || exit 1
depends=$(dpkg-deb -f "$deb" Depends)
check "Depends is computed from the shared libraries: $depends" \
  grep -q 'libmicrohttpd[0-9]* (>= [^)]*).*' <<<"$depends"
check "Depends names adduser (postinst)" grep -qw adduser <<<"$depends"
check "conffiles lists /etc/streamd/streamd.conf" \
  bash -c "dpkg-deb -I '$deb' conffiles | grep -qx /etc/streamd/streamd.conf"

# ---- install ----
apt-get install -y --no-install-recommends "$deb" </dev/null >"$WORK/install.log" 2>&1 || {
  cat "$WORK/install.log" >&2
  exit 1
}
check "dpkg reports the package installed" \
  bash -c "dpkg-query -W -f='\${Status} \${Version}' streamd | grep -qx 'install ok installed $version'"
check "streamd --version prints the project version" \
  bash -c "[ \"\$(/usr/sbin/streamd --version)\" = 'streamd $version' ]"
check "/usr/sbin/streamd -t accepts the installed /etc/streamd/streamd.conf" \
  bash -c "/usr/sbin/streamd -t | grep -qx 'configuration ok'"
check "streamctl --help prints its usage" bash -c "streamctl --help | grep -qi usage"
for page in streamd streamd.conf streamctl; do
  check "man -w $page finds the installed page" bash -c "man -w $page | grep -q '^/usr/share/man/man[158]/$page\\.[158]\\.gz$'"
done
check "man streamd.conf renders the key reference" \
  bash -c "MANWIDTH=100 man -P cat 5 streamd.conf 2>/dev/null | grep -q allowed_origins"

# The system user and the configuration's owner and mode.
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd streamd) || true
check "system user streamd exists (uid ${uid:-none} < 1000, home /nonexistent, no login shell)" \
  bash -c "[ -n '$uid' ] && [ '$uid' -lt 1000 ] && [ '$home' = /nonexistent ] && [ '$shell' != /bin/sh ] && [ '$shell' != /bin/bash ]"
check "group streamd is the user's primary group" bash -c "[ \"\$(getent group streamd | cut -d: -f3)\" = '$gid' ]"
check "/etc/streamd is root:streamd 0750" bash -c "[ \"\$(stat -c '%U:%G %a' /etc/streamd)\" = 'root:streamd 750' ]"
check "/etc/streamd/streamd.conf is root:streamd 0640 (it holds the keys)" \
  bash -c "[ \"\$(stat -c '%U:%G %a' /etc/streamd/streamd.conf)\" = 'root:streamd 640' ]"

# The unit: installed, enabled by postinst, and valid for systemd.
unit=/usr/lib/systemd/system/streamd.service
check "the unit is installed at $unit" [ -f "$unit" ]
check "the unit is enabled (multi-user.target.wants link)" [ -L /etc/systemd/system/multi-user.target.wants/streamd.service ]
check "the unit runs /usr/sbin/streamd -c /etc/streamd/streamd.conf as streamd" \
  bash -c "grep -qx 'ExecStart=/usr/sbin/streamd -c /etc/streamd/streamd.conf' $unit && grep -qx User=streamd $unit"
if command -v systemd-analyze >/dev/null; then
  check "systemd-analyze verify $unit" bash -c "systemd-analyze verify $unit"
else
  echo "skipped: systemd-analyze verify (systemd-analyze not installed)"
fi

# A real start as the unprivileged user, as the unit does it (port 0: never clashes), then SIGHUP.
log=$WORK/server.log
setpriv --reuid=streamd --regid=streamd --init-groups /usr/sbin/streamd -c /etc/streamd/streamd.conf -p 0 \
  2>"$log" </dev/null &
SERVER_PID=$!
wait_log() { # PATTERN: waits up to 10 s for PATTERN in the server log
  for _ in $(seq 100); do
    grep -q "$1" "$log" && return 0
    sleep 0.1
  done
  return 1
}
check "streamd starts as user streamd with the installed config" wait_log 'listening on 127\.0\.0\.1:'
kill -HUP "$SERVER_PID" 2>/dev/null || true
check "SIGHUP reloads the installed config as user streamd" wait_log 'configuration reloaded'
kill -TERM "$SERVER_PID" 2>/dev/null || true
rc=0
wait "$SERVER_PID" || rc=$?
SERVER_PID=
check "SIGTERM stops it with exit status 0" [ "$rc" -eq 0 ]
[ "$failed" -eq 0 ] || cat "$log" >&2

# ---- remove (the configuration stays), then purge (everything goes) ----
apt-get remove -y streamd </dev/null >"$WORK/remove.log" 2>&1 || cat "$WORK/remove.log" >&2
check "remove deletes the binaries" bash -c "[ ! -e /usr/sbin/streamd ] && [ ! -e /usr/bin/streamctl ]"
check "remove keeps the conffile /etc/streamd/streamd.conf" [ -f /etc/streamd/streamd.conf ]
apt-get purge -y streamd </dev/null >"$WORK/purge.log" 2>&1 || cat "$WORK/purge.log" >&2
check "purge leaves no trace in dpkg's database" bash -c "! dpkg-query -W streamd >/dev/null 2>&1"
check "purge removes the user streamd" bash -c "! getent passwd streamd >/dev/null"
check "purge removes the group streamd" bash -c "! getent group streamd >/dev/null"
check "purge removes /etc/streamd" [ ! -e /etc/streamd ]
check "purge removes the statoverrides" bash -c "! dpkg-statoverride --list | grep -q /etc/streamd"
check "purge removes the unit and its enable and mask links" \
  bash -c "[ ! -e $unit ] && [ ! -L /etc/systemd/system/multi-user.target.wants/streamd.service ] && [ ! -L /etc/systemd/system/streamd.service ]"
check "purge removes deb-systemd-helper's state" \
  bash -c "[ -z \"\$(find /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked -name '*streamd*' 2>/dev/null)\" ]"
check "purge removes the man pages" bash -c "! man -w streamd >/dev/null 2>&1"

printf 'package: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
