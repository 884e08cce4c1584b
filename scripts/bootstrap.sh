#!/bin/sh
# bootstrap: take a bare Ubuntu/Debian host (no Node yet) to a provisioned one: Node, npm and git from
# the host's own packages, the kit's dependencies, then `provision` with the arguments given.
#
#   scp -r cutover root@host:/opt/cutover
#   ssh root@host 'sh /opt/cutover/scripts/bootstrap.sh --manifest /opt/cutover/config/app.yaml'
set -eu

kit=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '==> %s\n' "$*"; }
die() { printf 'bootstrap: %s\n' "$*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || die "run it as root (it installs packages and provisions systemd units); e.g. sudo sh $0"
command -v apt-get >/dev/null 2>&1 || die "this host has no apt-get; cutover's bootstrap supports Debian and Ubuntu"

missing=""
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
command -v git >/dev/null 2>&1 || missing="$missing git"
if [ -n "$missing" ]; then
  say "installing$missing from the host's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086 # word splitting of the package list is intended
  apt-get install -y -qq --no-install-recommends $missing ca-certificates >/dev/null
else
  say "node, npm and git are already installed"
fi

# The kit needs Node 18.19 or later (Ubuntu 24.04 and Debian bookworm ship 18.19+).
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>18||(a===18&&b>=19)?0:1)' \
  || die "node $(node -p process.versions.node) is too old: cutover needs 18.19 or later"

say "installing the kit's dependencies in $kit"
cd "$kit"
if [ -d node_modules/tsx ] && [ -d node_modules/zx ]; then
  echo "    already installed"
else
  npm ci --omit=dev --no-audit --no-fund --loglevel=error
fi

say "compiling the kit for the cutover command"
# The same inputs as bin/cutover's staleness check: the sources, the compile scripts, the schema, the packages.
if [ -f dist/compiled.json ] && [ -z "$(find scripts config/manifest.schema.json node_modules/.package-lock.json -maxdepth 2 \( -name '*.ts' -o -name '*.mjs' -o -name '*.json' \) -newer dist/compiled.json 2>/dev/null)" ]; then
  echo "    already compiled"
else
  node scripts/compile.mjs || echo "    could not compile it: the cutover command will run the verbs through tsx (slower)"
fi

say "provision"
exec node "$kit/bin/cutover" provision "$@"
