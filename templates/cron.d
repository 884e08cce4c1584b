# /etc/cron.d/{{cron_name}}: cutover's scheduled prune of old releases of "{{app}}".
#
# Written by `cutover provision` from the manifest's prune.schedule; edit the manifest and provision
# again rather than this file. Fields: minute hour day-of-month month day-of-week user command.
# cron runs the command with a bare environment, so every program is named by its absolute path
# (node, then the kit's `cutover` executable, which runs the compiled prune verb, or the TypeScript one
# through tsx when the compiled kit is missing or stale). Its output goes to the journal:
# journalctl -t cutover-prune
# --cron: when a deploy holds the app's lock at that minute, prune says so and exits 0; the next
# scheduled run prunes.
SHELL=/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin
{{schedule}} root {{node}} {{cutover}} prune --cron --manifest {{manifest}} 2>&1 | /usr/bin/systemd-cat -t cutover-prune
