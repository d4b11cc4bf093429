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
# to run when a streamd package, user, group or /etc/streamd already exists, and purges on any exit.
#
#   tests/package/test_package.sh [BUILD_DIR]
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:-}
UNIT=/usr/lib/systemd/system/streamd.service
WANTS=/etc/systemd/system/multi-user.target.wants/streamd.service
export DEBIAN_FRONTEND=noninteractive
passed=0
failed=0

# check DESCRIPTION COMMAND...: runs COMMAND, counts and prints the result, never stops the script.
check() {
  local what=$1
  shift
  if "$@"; then
    printf 'ok - %s\n' "$what"
    passed=$((passed + 1))
  else
    printf 'not ok - %s\n' "$what" >&2
    failed=$((failed + 1))
  fi
}
skip() {
  printf 'skipped: %s\n' "$*"
  exit 77
}
package_state() { dpkg-query -W -f='${Status}' streamd 2>/dev/null || true; }

[ "$(id -u)" -eq 0 ] || skip "needs root (installs and purges a package)"
command -v dpkg >/dev/null && command -v apt-get >/dev/null || skip "not a Debian system"
command -v cpack >/dev/null || skip "cpack not found"
if [ -n "$(package_state)" ] && [ "$(package_state)" != "unknown ok not-installed" ]; then
  echo "a streamd package is on this machine ($(package_state)): purge it first (apt-get purge streamd)" >&2
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
  if [ -n "$(package_state)" ] && [ "$(package_state)" != "unknown ok not-installed" ]; then
    echo "cleanup: purging streamd" >&2
    apt-get purge -y streamd </dev/null >/dev/null 2>&1 ||
      dpkg --purge --force-all streamd >/dev/null 2>&1 || true
  fi
  # None of these existed when the test started (checked above): whatever a broken postrm left goes.
  for path in /etc/streamd/streamd.conf /etc/streamd; do
    dpkg-statoverride --remove "$path" >/dev/null 2>&1 || true
  done
  if getent passwd streamd >/dev/null; then userdel streamd || true; fi
  if getent group streamd >/dev/null; then groupdel streamd || true; fi
  rm -rf /etc/streamd "$WORK"
  exit "$rc"
}
trap cleanup EXIT

# ---- build the package ----
if [ -z "$BUILD" ]; then
  BUILD=$WORK/build
  cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DBUILD_TESTING=OFF \
    >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" >/dev/null
fi
version=$(sed -n 's/^#define SD_VERSION "\(.*\)"$/\1/p' "$BUILD/generated/sd_version.h")
project_version=$(sed -n 's/^project(streamd VERSION \([0-9.]*\) .*/\1/p' "$SRC/CMakeLists.txt")
check "sd_version.h carries the CMake project version ($project_version)" [ "$version" = "$project_version" ]
if ! cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$WORK/pkg" >"$WORK/cpack.log" 2>&1; then
  cat "$WORK/cpack.log" >&2
  exit 1
fi
deb=$WORK/pkg/streamd_${version}_$(dpkg --print-architecture).deb
check "cpack made $(basename "$deb")" [ -f "$deb" ]
[ -f "$deb" ] || exit 1
depends=$(dpkg-deb -f "$deb" Depends)
check "Depends is computed from the shared libraries: $depends" \
  grep -q 'libmicrohttpd[0-9]* (>= ' <<<"$depends"
check "Depends names adduser (postinst)" grep -qw adduser <<<"$depends"
check "conffiles lists /etc/streamd/streamd.conf" \
  grep -qx /etc/streamd/streamd.conf <<<"$(dpkg-deb -I "$deb" conffiles)"

# ---- install ----
if ! apt-get install -y --no-install-recommends "$deb" </dev/null >"$WORK/install.log" 2>&1; then
  cat "$WORK/install.log" >&2
  exit 1
fi
check "dpkg reports version $version installed" \
  [ "$(dpkg-query -W -f='${Status} ${Version}' streamd)" = "install ok installed $version" ]
check "streamd --version prints the project version" [ "$(/usr/sbin/streamd --version)" = "streamd $version" ]
check "/usr/sbin/streamd -t accepts the installed /etc/streamd/streamd.conf" \
  [ "$(/usr/sbin/streamd -t)" = "configuration ok" ]
check "postinst wrote a random 64-hex-digit api_key into the installed configuration" \
  grep -Eqx 'api_key = "[0-9a-f]{64}";' /etc/streamd/streamd.conf
check "streamctl --help prints its usage" grep -qi usage <<<"$(streamctl --help)"
for page in 8/streamd 5/streamd.conf 1/streamctl; do
  section=${page%%/*} name=${page#*/}
  check "man -w $name finds /usr/share/man/man$section/$name.$section.gz" \
    [ "$(man -w "$name")" = "/usr/share/man/man$section/$name.$section.gz" ]
done
check "man streamd.conf renders the key reference" \
  grep -q allowed_origins <<<"$(MANWIDTH=100 man -P cat 5 streamd.conf 2>/dev/null)"

# The system user and the configuration's owner and mode (it holds the API key and token secrets).
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd streamd) || true
check "system user streamd exists (uid ${uid:-none} < 1000)" [ "${uid:-1000}" -lt 1000 ]
check "its home is /nonexistent" [ "${home:-}" = /nonexistent ]
check "its shell is no login shell (${shell:-none})" grep -qE '/(nologin|false)$' <<<"${shell:-/bin/sh}"
check "group streamd is its primary group" [ "$(getent group streamd | cut -d: -f3)" = "${gid:-none}" ]
check "/etc/streamd is root:streamd 0750" [ "$(stat -c '%U:%G %a' /etc/streamd)" = "root:streamd 750" ]
check "/etc/streamd/streamd.conf is root:streamd 0640" \
  [ "$(stat -c '%U:%G %a' /etc/streamd/streamd.conf)" = "root:streamd 640" ]

# The unit: installed, enabled by postinst, valid for systemd.
check "the unit is installed at $UNIT" [ -f "$UNIT" ]
check "the unit is enabled ($WANTS)" [ -L "$WANTS" ]
check "the unit runs /usr/sbin/streamd -c /etc/streamd/streamd.conf" \
  grep -qx 'ExecStart=/usr/sbin/streamd -c /etc/streamd/streamd.conf' "$UNIT"
check "the unit runs as User=streamd" grep -qx 'User=streamd' "$UNIT"
if command -v systemd-analyze >/dev/null; then
  check "systemd-analyze verify $UNIT" systemd-analyze verify "$UNIT"
else
  echo "skipped: systemd-analyze verify (systemd-analyze not installed)"
fi

# A real start as the unprivileged user, as the unit does it (port 0: never clashes), then SIGHUP.
log=$WORK/server.log
setpriv --reuid=streamd --regid=streamd --init-groups /usr/sbin/streamd -c /etc/streamd/streamd.conf -p 0 \
  2>"$log" </dev/null &
SERVER_PID=$!
wait_log() { # PATTERN: waits up to 10 s for PATTERN in the server's log
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
check "remove deletes /usr/sbin/streamd" [ ! -e /usr/sbin/streamd ]
check "remove deletes /usr/bin/streamctl" [ ! -e /usr/bin/streamctl ]
check "remove keeps the conffile /etc/streamd/streamd.conf" [ -f /etc/streamd/streamd.conf ]
apt-get purge -y streamd </dev/null >"$WORK/purge.log" 2>&1 || cat "$WORK/purge.log" >&2
not() { ! "$@" >/dev/null 2>&1; }
check "purge leaves no trace in dpkg's database" not dpkg-query -W streamd
check "purge removes the user streamd" not getent passwd streamd
check "purge removes the group streamd" not getent group streamd
check "purge removes /etc/streamd" [ ! -e /etc/streamd ]
check "purge removes the statoverrides" not grep -q /etc/streamd <<<"$(dpkg-statoverride --list)"
check "purge removes the unit" [ ! -e "$UNIT" ]
check "purge removes the enable link" [ ! -L "$WANTS" ]
check "purge removes the mask link" [ ! -L /etc/systemd/system/streamd.service ]
check "purge removes deb-systemd-helper's state" [ -z "$(find /var/lib/systemd/deb-systemd-helper-enabled \
  /var/lib/systemd/deb-systemd-helper-masked -name '*streamd*' 2>/dev/null)" ]
check "purge removes the man pages" not man -w streamd

printf 'package: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
