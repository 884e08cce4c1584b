#!/usr/bin/env bash
# Installs what the demo and the tests need on a Debian/Ubuntu machine (as root): apt packages, npm packages, the test host's rootfs.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "setup: run it as root (it installs packages and builds a container rootfs)" >&2; exit 2; }
export DEBIAN_FRONTEND=noninteractive
echo "==> apt packages"
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  git tar zstd util-linux passwd procps \
  systemd-container debootstrap \
  python3 gunicorn >/dev/null
# ansible: Debian's package (ansible-core plus the community collections; the fleet test uses
# community.docker's nsenter connection, so the test hosts need no sshd). No galaxy downloads.
apt-get install -y -qq --no-install-recommends ansible >/dev/null

echo "==> npm packages"
npm ci --no-audit --no-fund --loglevel=error
# The cutover executable runs the verbs compiled to dist/ (npm's prepare did it already; say so plainly).
npm run --silent build

echo "==> the test host's rootfs (cached in /var/cache/cutover-test-host after the first build)"
npx tsx test/host/cli.ts build
