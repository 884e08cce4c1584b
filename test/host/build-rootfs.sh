#!/usr/bin/env bash
# Builds (once) the Debian bookworm rootfs of the disposable systemd test host, cached as a zstd tarball.
#
# Usage: test/host/build-rootfs.sh [--print-path]
#   --print-path   print the tarball path this recipe builds, and exit
# Env:   CUTOVER_TEST_HOST_CACHE   cache directory (default /var/cache/cutover-test-host)
#
# The tarball is named after a hash of this file, so editing the recipe invalidates the cache.
# Runs as root, needs no stdin, exits at once when the tarball already exists.
set -euo pipefail

CACHE="${CUTOVER_TEST_HOST_CACHE:-/var/cache/cutover-test-host}"
VERSION="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)"
TARBALL="$CACHE/rootfs-$VERSION.tar.zst"
SUITE=bookworm

PACKAGES=(
  nodejs npm git cron python3 gunicorn curl ca-certificates procps
  python3-venv python3-flask python3-django
  openssh-server openssh-client nginx-light caddy
  util-linux passwd adduser tar gzip xz-utils zstd iproute2 psmisc less
  systemd-sysv libpam-systemd
)
# Units that only hurt in a container: consoles, network waits, periodic apt/trim jobs.
MASKED_UNITS=(
  console-getty.service getty@.service getty.target serial-getty@.service
  systemd-networkd-wait-online.service systemd-firstboot.service
  systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer
  apt-daily.service apt-daily-upgrade.service fstrim.timer e2scrub_all.timer
  e2scrub_reap.service dpkg-db-backup.timer man-db.timer
)

log() { printf '[build-rootfs %5ss] %s\n' "$SECONDS" "$*" >&2; }

if [[ "${1:-}" == "--print-path" ]]; then echo "$TARBALL"; exit 0; fi
if [[ -f "$TARBALL" ]]; then log "cached: $TARBALL"; exit 0; fi
[[ "$(id -u)" == 0 ]] || { echo "build-rootfs.sh must run as root" >&2; exit 1; }

# The Debian mirror the host's own apt uses (deb822 "URIs:" or one-line "deb URL suite").
host_mirror() {
  local want="$1" fallback="$2" url
  url="$(grep -rhsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/ \
    | grep -E "/${want}/?( |$)" | grep -oE 'https?://[^ ]+' | head -n1 || true)"
  echo "${url:-$fallback}"
}

MIRROR="$(host_mirror debian http://deb.debian.org/debian)"
SECURITY="$(host_mirror debian-security http://deb.debian.org/debian-security)"

mkdir -p "$CACHE"
exec 9>"$CACHE/build.lock"
log "waiting for the build lock"
flock 9
if [[ -f "$TARBALL" ]]; then log "built meanwhile: $TARBALL"; exit 0; fi

WORK="$(mktemp -d "$CACHE/build-$VERSION.XXXXXX")"
ROOT="$WORK/root"
cleanup() {
  umount -R "$ROOT/proc" 2>/dev/null || true
  umount "$ROOT/dev/pts" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 HOME=/root "$@"; }

bootstrap() {
  log "debootstrap $SUITE from $MIRROR"
  debootstrap --variant=minbase --include=systemd,dbus "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 40 "$WORK/debootstrap.log" >&2; exit 1; }
}

install_packages() {
  log "apt-get install ${PACKAGES[*]}"
  cat >"$ROOT/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY $SUITE-security main
EOF
  printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
  chmod 755 "$ROOT/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  mount -t proc proc "$ROOT/proc"
  in_root apt-get update -q >"$WORK/apt.log" 2>&1 || { tail -n 40 "$WORK/apt.log" >&2; exit 1; }
  in_root apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >>"$WORK/apt.log" 2>&1 \
    || { tail -n 40 "$WORK/apt.log" >&2; exit 1; }
  in_root apt-get clean
  umount "$ROOT/proc"
  rm -f "$ROOT/usr/sbin/policy-rc.d" "$ROOT/etc/resolv.conf"
}

configure() {
  log "configure: hostname, masked units, journald, machine-id"
  echo cutover-test >"$ROOT/etc/hostname"
  echo LANG=C.UTF-8 >"$ROOT/etc/default/locale"
  printf '127.0.0.1 localhost\n127.0.1.1 cutover-test\n::1 localhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
  for unit in "${MASKED_UNITS[@]}"; do ln -sfn /dev/null "$ROOT/etc/systemd/system/$unit"; done
  # sshd, nginx and caddy are there for the tests that use them (private repos, the proxy): off at boot,
  # since test hosts share the machine's network and would fight over ports 22, 80, 443 and 2019.
  in_root systemctl disable ssh.service nginx.service caddy.service >/dev/null 2>&1
  mkdir -p "$ROOT/var/log/journal" "$ROOT/etc/systemd/journald.conf.d"
  printf '[Journal]\nStorage=persistent\nRateLimitBurst=0\n' >"$ROOT/etc/systemd/journald.conf.d/cutover-test.conf"
  # An empty machine-id: systemd makes a fresh one per boot (nspawn passes the container's UUID).
  : >"$ROOT/etc/machine-id"
  rm -f "$ROOT/var/lib/dbus/machine-id"
  # Keep future apt installs inside the container as lean as this image.
  printf 'path-exclude=/usr/share/doc/*\npath-exclude=/usr/share/man/*\npath-exclude=/usr/share/info/*\n' \
    >"$ROOT/etc/dpkg/dpkg.cfg.d/01-cutover-nodoc"
  [[ -x "$ROOT/usr/bin/node" && -x "$ROOT/usr/sbin/cron" && -x "$ROOT/usr/bin/gunicorn" \
     && -x "$ROOT/usr/sbin/sshd" && -x "$ROOT/usr/sbin/nginx" && -x "$ROOT/usr/bin/caddy" ]] \
    || { echo "node, cron, gunicorn, sshd, nginx or caddy missing from the rootfs" >&2; exit 1; }
  for unit in ssh.service nginx.service caddy.service; do
    [[ -z "$(find "$ROOT/etc/systemd/system" -name "$unit" -path '*.wants/*')" ]] \
      || { echo "$unit is still enabled in the rootfs" >&2; exit 1; }
  done
}

trim() {
  log "trim docs, man pages, apt lists, logs"
  rm -rf "$ROOT"/usr/share/{doc,man,info,lintian,linda}/* "$ROOT"/var/lib/apt/lists/* \
    "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/debconf/*-old "$ROOT"/var/log/*.log \
    "$ROOT"/var/log/apt/* "$ROOT"/tmp/* "$ROOT"/root/.npm
  find "$ROOT/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'C.*' ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
}

pack() {
  log "pack $(du -sh "$ROOT" | cut -f1) to $TARBALL"
  tar -C "$ROOT" --numeric-owner --xattrs --xattrs-include='*' -cf - . | zstd -q -T0 -8 -o "$WORK/rootfs.tar.zst"
  mv "$WORK/rootfs.tar.zst" "$TARBALL"
  log "remove tarballs and unpacked bases of older recipes"
  find "$CACHE" -maxdepth 1 \( -name 'rootfs-*.tar.zst' -o -name 'base-*' \) \
    ! -name "rootfs-$VERSION.tar.zst" ! -name "base-$VERSION" -exec rm -rf {} +
  log "done: $TARBALL ($(du -h "$TARBALL" | cut -f1))"
}

# The tree just packed is the unpacked base host.ts wants: keep it instead of unpacking the tarball again.
keep_as_base() {
  [[ -e "$CACHE/base-$VERSION" ]] || mv "$ROOT" "$CACHE/base-$VERSION"
}

bootstrap
install_packages
configure
trim
pack
keep_as_base
