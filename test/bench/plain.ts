// The plain procedure people use today, set up by hand inside the test host: a hand-written unit, a new directory per version, `ln -sfn`, `systemctl restart`.
import type { ExecResult } from '../host/host.ts';
import type { KitHost } from '../helpers/hostkit.ts';

export const PLAIN = { app: 'benchplain', dir: '/srv/plain' };

/** A unit as people write it: the app binds its port, no socket, no health check, Restart=on-failure. */
function unitText(port: number): string {
  return `[Unit]
Description=${PLAIN.app}: a web app deployed the plain way (hand-written unit)
After=network.target

[Service]
Type=simple
User=${PLAIN.app}
WorkingDirectory=${PLAIN.dir}/current
Environment=NODE_ENV=production PORT=${port} STARTUP_DELAY_MS=300
ExecStart=/usr/bin/node server.js
Restart=on-failure
RestartSec=1
TimeoutStopSec=10

[Install]
WantedBy=multi-user.target
`;
}

/**
 * The deploy: export the commit into a new directory, build it, point `current` at it with
 * `ln -sfn`, restart. $1 = the bare or working repository, $2 = the commit.
 */
const DEPLOY = `set -e
repo="$1"; commit="$2"
dir=${PLAIN.dir}/releases/$(printf %.12s "$commit")
mkdir -p "$dir"
git --git-dir="$repo/.git" archive "$commit" | tar -x -C "$dir"
cd "$dir" && node build.js >/dev/null
ln -sfn "$dir" ${PLAIN.dir}/current
systemctl restart ${PLAIN.app}.service
`;

export async function plainDeploy(k: KitHost, repo: string, commit: string): Promise<ExecResult> {
  return k.host.exec(['sh', '-c', DEPLOY, 'deploy', repo, commit], { timeoutMs: 120_000 });
}

/** What a person does once they notice a broken plain deploy: point `current` back and restart. */
export async function plainRestore(k: KitHost, commit: string): Promise<ExecResult> {
  const dir = `${PLAIN.dir}/releases/${commit.slice(0, 12)}`;
  return k.host.sh(`set -e; ln -sfn '${dir}' ${PLAIN.dir}/current; systemctl reset-failed ${PLAIN.app}.service || true; systemctl restart ${PLAIN.app}.service`, { timeoutMs: 60_000 });
}

/** The user, the directories and the unit, then the first deploy of `commit`. */
export async function setUpPlain(k: KitHost, port: number, repo: string, commit: string): Promise<void> {
  const setup = await k.host.sh(
    `set -e
id -u ${PLAIN.app} >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin ${PLAIN.app}
mkdir -p ${PLAIN.dir}/releases
cat > /etc/systemd/system/${PLAIN.app}.service
systemctl daemon-reload
systemctl enable --quiet ${PLAIN.app}.service`,
    { input: unitText(port), timeoutMs: 60_000 },
  );
  if (setup.code !== 0) throw new Error(`plain setup: ${setup.stderr}`);
  const first = await plainDeploy(k, repo, commit);
  if (first.code !== 0) throw new Error(`plain first deploy: ${first.stderr}`);
}
