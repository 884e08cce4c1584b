#!/bin/sh
# The ssh git runs for an app with a deploy key (GIT_SSH_COMMAND names this file): the key and the pinned known_hosts reach ssh as argv words, never through a shell line.
# cutover sets CUTOVER_SSH_KEY, CUTOVER_KNOWN_HOSTS and CUTOVER_SSH_CHECK (yes, or accept-new when provision pins a host on first contact),
# after checking both paths are root's and made of letters, digits and . _ - @ + / only (ssh itself expands % and splits on spaces in them).
set -eu
: "${CUTOVER_SSH_KEY:?is not set: run git through cutover}" "${CUTOVER_KNOWN_HOSTS:?is not set}" "${CUTOVER_SSH_CHECK:?is not set}"
case "$CUTOVER_SSH_CHECK" in yes|accept-new) ;; *) echo "cutover git-ssh: CUTOVER_SSH_CHECK must be yes or accept-new" >&2; exit 2 ;; esac
exec ssh -i "$CUTOVER_SSH_KEY" \
  -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes -o ControlPath=none -o ConnectTimeout=30 \
  -o StrictHostKeyChecking="$CUTOVER_SSH_CHECK" -o UserKnownHostsFile="$CUTOVER_KNOWN_HOSTS" \
  -o GlobalKnownHostsFile=/dev/null -o UpdateHostKeys=no -o HashKnownHosts=no -o CheckHostIP=no \
  "$@"
