// system tier: the public entrance — provision writes an nginx and a Caddy site, requests through them reach the app with the forwarded headers, a release under load through them drops nothing, a bad change leaves the old site serving.
import fs from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootKitHost, expectExit, type KitHost } from '../helpers/hostkit.ts';
import { getJson, httpGet } from '../helpers/apps.ts';
import { cleanupTempDirs, type AppRepo } from '../helpers/gitrepo.ts';
import { nodeApp, setUp } from '../helpers/fixtures.ts';
import { describeLoad, handoverProblems, loadDuring } from '../helpers/load.ts';
import { eventually, hostPath, inside, out, provisionWith, statInside } from '../helpers/system.ts';
import { systemTier } from '../helpers/prereq.ts';

const { it, ready } = systemTier(import.meta.url);

// Ports 4700-4799 belong to this file. The host has a network of its own besides (a test host's
// ports 80, 443 and 2019 would otherwise be this machine's), reached at h.host.address.
const NGINX = { app: 'pxnginx', port: 4701, listen: 4702, server: 'nginx' as const };
const CADDY = { app: 'pxcaddy', port: 4711, listen: 4712, server: 'caddy' as const };
/** A site of the operator's own in their Caddyfile, which cutover must leave serving. */
const OPERATOR_SITE_PORT = 4719;
type App = typeof NGINX | typeof CADDY;

let h: KitHost;
const repos: Record<string, AppRepo> = {};
const manifests: Record<string, string> = {};
const numbers: string[] = [];
const t0 = Date.now();

const OPERATOR_CADDYFILE = `# The operator's own Caddyfile.
{
	admin unix//var/lib/caddy/admin.sock
}

:${OPERATOR_SITE_PORT} {
	respond "the operator's own site"
}
`;

function manifestObject(a: App, proxy: Record<string, unknown> = {}): Record<string, unknown> {
  return nodeApp(a.app, `/srv/src/${a.app}`, a.port, {
    env: { STARTUP_DELAY_MS: '300' },
    proxy: { server: a.server, server_name: h.host.address, tls: 'off', listen: a.listen, ...proxy },
  });
}

const kit = (a: App, verb: string, args: string[] = []) => h.kit(verb, args, { manifest: manifests[a.app] });
const through = (a: App, p = '/') => `http://${h.host.address}:${a.listen}${p}`;
const siteFile = (a: App) => (a.server === 'nginx' ? `/etc/nginx/conf.d/cutover-${a.app}.conf` : `/etc/caddy/cutover.d/${a.app}.caddy`);
/**
 * The pids of nginx's serving workers, once settled: a reload starts new workers, then tells the old ones
 * to finish (they show "shutting down" until they exit), so a reload shows as new pids here.
 */
async function nginxWorkers(): Promise<string> {
  const read = () => inside(h, "ps -C nginx -o pid=,args= | grep 'worker process' | awk '{print $1, $NF}' | sort | tr '\\n' ' '");
  let last = await read();
  return eventually<string>('nginx workers settle', async () => {
    await new Promise((r) => setTimeout(r, 300));
    const now = await read();
    const settled = now === last && !now.includes('down');
    last = now;
    return settled ? now : '';
  });
}
/** How many configurations Caddy has loaded (its start and each reload log "load complete"). */
const caddyLoads = async () => Number(await inside(h, "journalctl -u caddy --no-pager --output cat | grep -c '\"load complete\"' || true"));

test.before(async () => {
  if (!ready) return;
  await setUp(async () => {
    h = await bootKitHost({ privateNetwork: true });
    // What the operator does once: nginx without Debian's default site (it listens on 80), Caddy with their
    // own Caddyfile (admin API on a Unix socket, one site of their own); both running.
    await inside(h, `rm /etc/nginx/sites-enabled/default && systemctl start nginx`);
    await inside(h, `cat > /etc/caddy/Caddyfile <<'EOF'\n${OPERATOR_CADDYFILE}EOF\nchown caddy:caddy /etc/caddy/Caddyfile && chmod 640 /etc/caddy/Caddyfile && systemctl start caddy`);
    for (const a of [NGINX, CADDY]) {
      const { repo } = await h.repo(a.app);
      repos[a.app] = repo;
      manifests[a.app] = h.manifest(manifestObject(a));
      const p = await kit(a, 'provision');
      expectExit(p, 0, `provision ${a.app}`);
      expectExit(await kit(a, 'release', ['main']), 0, `release v1 of ${a.app}`);
    }
  });
});

test.after(async () => {
  if (h) await h.stop();
  await cleanupTempDirs();
  if (numbers.length) console.log(`\n  through the proxy, measured:\n    ${numbers.join('\n    ')}`);
  console.log(`\n  proxy.test.ts took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

for (const a of [NGINX, CADDY]) {
  it(`${a.server}: provision wrote a marked site; requests through it reach the app with Host, X-Forwarded-For/-Proto/-Host, and a forged X-Forwarded-For is replaced`, async () => {
    const site = h.read(siteFile(a));
    assert.match(site.split('\n')[0]!, `the public entrance of the "${a.app}" web app, written by cutover`);
    const st = await kit(a, 'status', ['--json']);
    expectExit(st, 0, 'status --json');
    assert.equal(JSON.parse(st.stdout).proxy, { server: a.server, names: [h.host.address], site: siteFile(a), site_state: 'in place' });
    assert.match(site, `127.0.0.1:${a.port}`);
    assert.is(String((await getJson(through(a))).version), '1');
    const res = await httpGet(through(a, '/headers'), { headers: { 'X-Forwarded-For': '203.0.113.66', 'X-Forwarded-Proto': 'https' } });
    assert.is(res.status, 200, res.body);
    const seen = JSON.parse(res.body);
    const client = h.host.address!.replace(/\.\d+$/, (last) => `.${Number(last.slice(1)) - 1}`); // this machine's end of the /30
    assert.equal(
      { host: seen.host, forwardedFor: seen.forwardedFor, forwardedProto: seen.forwardedProto, forwardedHost: seen.forwardedHost, remoteAddress: seen.remoteAddress },
      { host: `${h.host.address}:${a.listen}`, forwardedFor: client, forwardedProto: 'http', forwardedHost: `${h.host.address}:${a.listen}`, remoteAddress: '127.0.0.1' },
      `what the app saw: ${res.body}`,
    );
  });
}

it("caddy: the operator's Caddyfile keeps its text and its own site; cutover only added the import of its sites at the end", async () => {
  const caddyfile = h.read('/etc/caddy/Caddyfile');
  assert.ok(caddyfile.startsWith(OPERATOR_CADDYFILE), `the operator's text is untouched:\n${caddyfile}`);
  assert.match(caddyfile.slice(OPERATOR_CADDYFILE.length), /^\n# Added by cutover .*\nimport \/etc\/caddy\/cutover\.d\/\*\.caddy\n$/);
  assert.equal(await statInside(h, '/etc/caddy/Caddyfile'), { owner: 'caddy', group: 'caddy', mode: '640', type: 'regular file' }, 'its owner and mode kept');
  const own = await httpGet(`http://${h.host.address}:${OPERATOR_SITE_PORT}/`);
  assert.is(own.body, "the operator's own site");
  // Nothing listens on Caddy's default admin port or on 80/443 (the redirect Caddy adds only for HTTPS sites).
  assert.is(await inside(h, "ss -Hltn '( sport = :2019 or sport = :80 or sport = :443 )'"), '');
});

it('a second provision changes nothing and reloads neither server; --dry-run of a change shows the diff and changes nothing', async () => {
  const workers = await nginxWorkers();
  const loads = await caddyLoads();
  for (const a of [NGINX, CADDY]) {
    const r = await kit(a, 'provision');
    expectExit(r, 0, `provision ${a.app} again`);
    assert.match(r.stdout, 'Nothing to change');
  }
  assert.is(await nginxWorkers(), workers, 'nginx was not reloaded');
  assert.is(await caddyLoads(), loads, 'caddy was not reloaded');
  const before = h.read(siteFile(NGINX));
  h.manifest(manifestObject(NGINX, { server_name: 'shop.example.test' }));
  try {
    const r = await kit(NGINX, 'provision', ['--dry-run']);
    expectExit(r, 0, 'provision --dry-run');
    assert.match(r.stdout, '+\tserver_name shop.example.test;');
    assert.match(r.stdout, 'would check the result with `nginx -t -q` and reload nginx');
    assert.is(h.read(siteFile(NGINX)), before);
    assert.is(await nginxWorkers(), workers);
    const st = await kit(NGINX, 'status');
    expectExit(st, 0, 'status');
    assert.match(st.stdout, `public entrance: nginx site ${siteFile(NGINX)} for shop.example.test: differs from the manifest (provision writes it)`);
  } finally {
    h.manifest(manifestObject(NGINX));
  }
});

for (const a of [NGINX, CADDY]) {
  it(`${a.server}: a release under load through the proxy fails no request (GET, and POST, which a proxy must not retry), and the proxy is not reloaded`, async () => {
    const workers = await nginxWorkers();
    const loads = await caddyLoads();
    await repos[a.app]!.commit({ VERSION: '2\n' }, 'v2');
    let release: ReturnType<typeof kit> | undefined;
    const action = () => (release ??= kit(a, 'release', ['main']));
    const base = through(a).replace(/\/$/, '');
    const [run, posts] = await Promise.all([
      loadDuring(base, action, { workers: 6, minMs: 3000, path: '/version' }),
      loadDuring(base, action, { workers: 2, minMs: 3000, path: '/echo', method: 'POST' }),
    ]);
    expectExit(run.result, 0, `release v2 of ${a.app}`);
    const line = describeLoad(`${a.app}: handover 1 → 2 through ${a.server}`, run.load, run.samples);
    const postLine = describeLoad(`${a.app}: the same handover, POSTs`, posts.load);
    numbers.push(line, postLine);
    console.log(`\n  ${line}\n  ${postLine}`);
    assert.is(run.load.failed, 0, `no failed request: ${JSON.stringify(run.load.errors)}`);
    assert.ok(posts.load.requests > 20, `the POST load ran (${posts.load.requests})`);
    assert.is(posts.load.failed, 0, `no failed POST: ${JSON.stringify(posts.load.errors)}`);
    assert.is(run.samples.filter((s) => s.error).length, 0, 'no failed version sample');
    assert.equal(handoverProblems(run.samples, '1', '2', run.actionEndMs), []);
    assert.is(await nginxWorkers(), workers);
    assert.is(await caddyLoads(), loads);
  });
}

for (const a of [NGINX, CADDY]) {
  it(`${a.server}: a certificate file that does not exist: exit 1 with ${a.server}'s own error, the previous files back, not reloaded, the old site serving`, async () => {
    const site = h.read(siteFile(a));
    const caddyfile = h.read('/etc/caddy/Caddyfile');
    const workers = await nginxWorkers();
    const loads = await caddyLoads();
    await provisionWith(h, { changed: manifestObject(a, { tls: { cert: '/etc/ssl/missing/fullchain.pem', key: '/etc/ssl/missing/privkey.pem' }, listen: a.listen + 1 }), original: manifestObject(a) }, { code: 1, what: 'provision with a missing certificate' }, async (r) => {
      const text = out(r);
      assert.match(text, a.server === 'nginx' ? '`nginx -t -q`' : '`caddy validate');
      assert.match(text, '/etc/ssl/missing/fullchain.pem', `${a.server}'s own words name the file`);
      assert.match(text, `The previous files are back in place and ${a.server} was not reloaded: it serves as before.`);
      assert.not.match(text, 'fails that check without cutover');
      assert.is(h.read(siteFile(a)), site, 'the site file is as it was');
      assert.is(h.read('/etc/caddy/Caddyfile'), caddyfile);
      assert.is(await nginxWorkers(), workers);
      assert.is(await caddyLoads(), loads);
      assert.is(String((await getJson(through(a))).version), '2', 'the old site still serves');
    });
    const again = await kit(a, 'provision');
    expectExit(again, 0, 'provision with the manifest put back');
    assert.match(again.stdout, 'Nothing to change');
  });
}

it('nginx: tls with certificate files serves HTTPS on the port given; the app sees X-Forwarded-Proto https', async () => {
  await inside(h, `mkdir -p /etc/ssl/pxnginx && cd /etc/ssl/pxnginx && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=${h.host.address} -keyout privkey.pem -out fullchain.pem 2>/dev/null && chmod 600 privkey.pem`);
  const workers = await nginxWorkers();
  await provisionWith(h, { changed: manifestObject(NGINX, { tls: { cert: '/etc/ssl/pxnginx/fullchain.pem', key: '/etc/ssl/pxnginx/privkey.pem' }, listen: 4703 }), original: manifestObject(NGINX) }, { code: 0, what: 'provision with TLS' }, async (r) => {
    assert.match(r.stdout, `updated the nginx site ${siteFile(NGINX)}`);
    assert.match(r.stdout, 'reloaded nginx');
    assert.is.not(await nginxWorkers(), workers, 'nginx was reloaded');
    const seen = JSON.parse(await inside(h, `curl -sS --fail --cacert /etc/ssl/pxnginx/fullchain.pem https://${h.host.address}:4703/headers`));
    assert.is(seen.forwardedProto, 'https');
    assert.is(seen.host, `${h.host.address}:4703`);
    assert.not.match(h.read(siteFile(NGINX)), 'listen 80;', 'no redirect from port 80 when the site listens elsewhere than 443');
  });
  expectExit(await kit(NGINX, 'provision'), 0, 'provision back to plain HTTP');
  assert.is(String((await getJson(through(NGINX))).version), '2');
});

it("caddy: tls internal serves HTTPS with a certificate from Caddy's local CA; the app sees X-Forwarded-Proto https", async () => {
  await provisionWith(h, { changed: manifestObject(CADDY, { server_name: 'tls.shop.test', tls: 'internal', listen: 4713 }), original: manifestObject(CADDY) }, { code: 0, what: 'provision with tls internal' }, async (r) => {
    assert.match(r.stdout, 'reloaded caddy');
    // Caddy issues the certificate in the background after the reload: ask until the handshake succeeds.
    const ca = '/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt';
    const curl = `curl -sS --fail --max-time 5 --cacert ${ca} --resolve tls.shop.test:4713:${h.host.address} https://tls.shop.test:4713/headers`;
    const body = await eventually<string>('Caddy serves HTTPS with its internal certificate', async () => {
      const res = await h.host.sh(curl);
      return res.code === 0 ? res.stdout : '';
    }, 30_000);
    const seen = JSON.parse(body);
    assert.is(seen.forwardedProto, 'https');
    assert.is(seen.host, 'tls.shop.test:4713');
    const issuer = await inside(h, `echo | openssl s_client -connect ${h.host.address}:4713 -servername tls.shop.test 2>/dev/null | openssl x509 -noout -issuer`);
    assert.match(issuer, 'Caddy Local Authority', `the certificate is from Caddy's local CA: ${issuer}`);
  });
  expectExit(await kit(CADDY, 'provision'), 0, 'provision back to plain HTTP');
  assert.is(String((await getJson(through(CADDY))).version), '2');
});

it('caddy: a key file only root can read (as certbot keeps them) is refused by caddy validate, which runs as the caddy user; nothing changes', async () => {
  // The key the nginx test made: 0600 root, which nginx (its master runs as root) reads and Caddy (user caddy) cannot.
  const site = h.read(siteFile(CADDY));
  const loads = await caddyLoads();
  await provisionWith(h, { changed: manifestObject(CADDY, { tls: { cert: '/etc/ssl/pxnginx/fullchain.pem', key: '/etc/ssl/pxnginx/privkey.pem' }, listen: 4713 }), original: manifestObject(CADDY) }, { code: 1, what: 'provision with a key caddy cannot read' }, async (r) => {
    assert.match(out(r), /privkey\.pem: permission denied/);
    assert.match(out(r), 'The previous files are back in place and caddy was not reloaded');
    assert.is(h.read(siteFile(CADDY)), site);
    assert.is(await caddyLoads(), loads);
    assert.is(String((await getJson(through(CADDY))).version), '2');
  });
});

it("a file at cutover's site path that cutover did not write is left alone: exit 1, the file unchanged, nothing reloaded", async () => {
  const other = { app: 'pxother', port: 4721, listen: 4722, server: 'nginx' as const };
  const own = '# the operator\'s own file\nserver { listen 4722; return 204; }\n';
  await inside(h, `cat > /etc/nginx/conf.d/cutover-pxother.conf <<'EOF'\n${own}EOF\nsystemctl reload nginx`);
  const workers = await nginxWorkers();
  const { url } = await h.repo(other.app);
  manifests[other.app] = h.manifest({ ...manifestObject(other), repo: url });
  const r = await kit(other, 'provision');
  expectExit(r, 1, 'provision over a file cutover did not write');
  assert.match(out(r), '/etc/nginx/conf.d/cutover-pxother.conf exists and cutover did not write it');
  assert.match(out(r), 'Move that file away if it is yours');
  assert.is(h.read('/etc/nginx/conf.d/cutover-pxother.conf'), own);
  assert.is(await nginxWorkers(), workers);
  assert.is((await h.host.exec(['id', other.app])).code, 1, 'checked before anything changed: no user made');
  assert.is((await h.host.exec(['test', '-e', `/usr/local/src/${other.app}`])).code, 1, 'no root made');
});

it('a server that is not installed: exit 1 naming the apt-get install, before anything changed', async () => {
  const none = { app: 'pxnone', port: 4731, listen: 4732, server: 'nginx' as const };
  const { url } = await h.repo(none.app);
  manifests[none.app] = h.manifest({ ...manifestObject(none), repo: url });
  // nginx is in /usr/sbin: without it on PATH, the kit finds no nginx, as on a host without the package.
  const r = await h.kit('provision', [], { manifest: manifests[none.app], env: { PATH: '/usr/local/bin:/usr/bin:/bin' } });
  expectExit(r, 1, 'provision without nginx');
  assert.match(out(r), "The manifest's proxy asks for nginx, but nginx is not installed on this host; nothing was changed.");
  assert.match(out(r), 'apt-get install nginx-light');
  assert.is((await h.host.exec(['id', none.app])).code, 1, 'no user made');
  assert.is((await h.host.exec(['test', '-e', `/usr/local/src/${none.app}`])).code, 1, 'no root made');
});

it('caddy: a reload that fails (the port is nginx\'s) puts the previous site back; Caddy keeps serving the old one', async () => {
  const site = h.read(siteFile(CADDY));
  const loads = await caddyLoads();
  // Another name (the same name and port as nginx's site is refused before any change, see below).
  await provisionWith(h, { changed: manifestObject(CADDY, { listen: NGINX.listen, server_name: 'reload.shop.test' }), original: manifestObject(CADDY) }, { code: 1, what: 'provision onto a port nginx holds' }, async (r) => {
    assert.match(out(r), 'Reloading caddy with the new configuration for pxcaddy failed');
    assert.match(out(r), 'address already in use');
    assert.match(out(r), 'The previous files are back in place; caddy keeps the configuration it had');
    assert.is(h.read(siteFile(CADDY)), site);
    assert.is(String((await getJson(through(CADDY))).version), '2', 'the old site still serves');
    assert.is(String((await getJson(through(NGINX))).version), '2', 'and nginx its own');
    assert.ok((await caddyLoads()) === loads, 'no new configuration was loaded');
  });
  const again = await kit(CADDY, 'provision');
  expectExit(again, 0, 'provision with the manifest put back');
  assert.match(again.stdout, 'Nothing to change');
});

it('a manifest without proxy: provision removes the site it wrote and reloads; with proxy again, the site is back', async () => {
  const { proxy: _, ...without } = manifestObject(NGINX);
  await provisionWith(h, { changed: without, original: manifestObject(NGINX) }, { code: 0, what: 'provision without proxy' }, async (r) => {
    assert.match(r.stdout, `removed the nginx site ${siteFile(NGINX)}: the manifest no longer has a proxy`);
    assert.is((await h.host.exec(['test', '-e', siteFile(NGINX)])).code, 1);
    assert.match(r.stdout, 'reloaded nginx');
    // The old workers finish what they have in hand first: the port closes once they have.
    await eventually('nothing listens on the site port any more', () =>
      httpGet(through(NGINX)).then(() => false, (e) => (e as NodeJS.ErrnoException).code === 'ECONNREFUSED'),
    );
  });
  expectExit(await kit(NGINX, 'provision'), 0, 'provision with proxy again');
  assert.is(String((await getJson(through(NGINX))).version), '2');
});

it('caddy: with no Caddyfile at all, provision writes one (admin API on a Unix socket, importing its sites) that caddy validates and reloads', async () => {
  await inside(h, 'mv /etc/caddy/Caddyfile /root/Caddyfile.operator');
  try {
    const r = await kit(CADDY, 'provision');
    expectExit(r, 0, 'provision with no Caddyfile');
    assert.match(r.stdout, 'wrote /etc/caddy/Caddyfile: there was none');
    assert.match(r.stdout, 'reloaded caddy');
    const written = h.read('/etc/caddy/Caddyfile');
    assert.match(written, 'admin unix//var/lib/caddy/admin.sock');
    assert.match(written, /^import \/etc\/caddy\/cutover\.d\/\*\.caddy$/m);
    assert.is(String((await getJson(through(CADDY))).version), '2');
    const again = await kit(CADDY, 'provision');
    assert.match(again.stdout, 'Nothing to change');
  } finally {
    await inside(h, 'mv /root/Caddyfile.operator /etc/caddy/Caddyfile && systemctl reload caddy');
  }
});

it('a move from nginx to Caddy: the Caddy site is loaded first, then the nginx site removed; a Caddy site that fails leaves the nginx one serving', async () => {
  const moved = { ...NGINX, server: 'caddy' as const, listen: 4705 };
  h.manifest(manifestObject(moved, { tls: { cert: '/etc/ssl/missing/fullchain.pem', key: '/etc/ssl/missing/privkey.pem' } }));
  try {
    const bad = await kit(NGINX, 'provision');
    expectExit(bad, 1, 'a move whose new site fails its check');
    assert.match(out(bad), "caddy's own check");
    assert.ok(h.read(siteFile(NGINX)).length > 0, 'the nginx site is still there');
    assert.is(String((await getJson(through(NGINX))).version), '2', 'and still serves');
    h.manifest(manifestObject(moved));
    const r = await kit(NGINX, 'provision');
    expectExit(r, 0, 'the move');
    const lines = r.stdout.split('\n');
    const at = (text: string) => lines.findIndex((l) => l.includes(text));
    assert.ok(at('reloaded caddy') >= 0 && at('reloaded caddy') < at(`removed the nginx site ${siteFile(NGINX)}`), `caddy first, then nginx:\n${r.stdout}`);
    assert.is(String((await getJson(through(moved))).version), '2', 'served through Caddy now');
    assert.is((await h.host.exec(['test', '-e', siteFile(NGINX)])).code, 1);
  } finally {
    h.manifest(manifestObject(NGINX));
  }
  const back = await kit(NGINX, 'provision');
  expectExit(back, 0, 'back to nginx');
  assert.match(back.stdout, `removed the caddy site /etc/caddy/cutover.d/${NGINX.app}.caddy`);
  assert.is(String((await getJson(through(NGINX))).version), '2');
});

it('server_name as a list: each name reaches the app (nginx names them all; Caddy serves each and no other)', async () => {
  const names = [h.host.address!, 'www.shop.test'];
  try {
    for (const a of [NGINX, CADDY]) {
      manifests[a.app] = h.manifest(manifestObject(a, { server_name: names }));
      const r = await kit(a, 'provision');
      expectExit(r, 0, `provision ${a.app} with two names`);
      assert.match(r.stdout, `(${names.join(', ')} → 127.0.0.1:${a.port})`);
      for (const name of names) {
        const res = await httpGet(through(a, '/'), { headers: { host: `${name}:${a.listen}` } });
        assert.is(res.status, 200, `${a.server} ${name}: ${res.body}`);
        assert.ok(JSON.parse(res.body).version, `${a.server}: ${name} reaches the app`);
      }
    }
    assert.match(h.read(siteFile(NGINX)), `server_name ${names.join(' ')};`);
    const other = await httpGet(through(CADDY, '/'), { headers: { host: `other.test:${CADDY.listen}` } });
    assert.not.match(other.body, '"version"', `caddy: a name not listed does not reach the app (${other.status})`);
  } finally {
    for (const a of [NGINX, CADDY]) manifests[a.app] = h.manifest(manifestObject(a));
  }
  for (const a of [NGINX, CADDY]) expectExit(await kit(a, 'provision'), 0, `provision ${a.app} with one name again`);
});

it("a name and port another app's site already serves: exit 1 naming that app, before anything changed (the same name on another port is fine, as the two apps here show)", async () => {
  const dup = { app: 'pxdup', port: 4721, listen: CADDY.listen, server: 'caddy' as const };
  const manifest = h.manifest(nodeApp(dup.app, `/srv/src/${dup.app}`, dup.port, { proxy: { server: 'caddy', server_name: ['dup.shop.test', h.host.address], tls: 'off', listen: dup.listen } }));
  const loads = await caddyLoads();
  const r = await h.kit('provision', [], { manifest });
  expectExit(r, 1, 'provision of an app whose name and port are taken');
  assert.match(r.stderr, `proxy.server_name: ${h.host.address}:${CADDY.listen} is already served by the app "${CADDY.app}" (${siteFile(CADDY)}, written by cutover)`);
  assert.match(r.stderr, 'nothing was changed');
  assert.is((await h.host.exec(['test', '-e', siteFile(dup)])).code, 1, 'no site written');
  assert.is((await h.host.exec(['test', '-e', `/usr/local/src/${dup.app}`])).code, 1, 'no app root made');
  assert.is((await h.host.exec(['id', dup.app])).code, 1, 'no user made');
  assert.is(await caddyLoads(), loads, 'caddy was not reloaded');
});

it("nginx: an operator's own site with the same name and port: provision says nginx ignores one of the two", async () => {
  const operator = '/etc/nginx/conf.d/operator.conf';
  fs.writeFileSync(hostPath(h, operator), `server {\n\tlisten ${NGINX.listen};\n\tserver_name ${h.host.address};\n\treturn 200 "the operator";\n}\n`);
  await inside(h, 'nginx -t -q && systemctl reload nginx');
  try {
    manifests[NGINX.app] = h.manifest(manifestObject(NGINX, { server_name: [h.host.address!, 'warn.shop.test'] }));
    const r = await kit(NGINX, 'provision');
    expectExit(r, 0, 'provision beside a conflicting site');
    assert.match(r.stderr, `nginx's check passed with a warning about ${NGINX.app}'s site: conflicting server name "${h.host.address}" on 0.0.0.0:${NGINX.listen}, ignored`);
    assert.match(r.stderr, 'find it with `nginx -T | grep -n server_name`');
  } finally {
    await inside(h, `rm -f ${operator} && systemctl reload nginx`);
    manifests[NGINX.app] = h.manifest(manifestObject(NGINX));
  }
  const back = await kit(NGINX, 'provision');
  expectExit(back, 0, 'provision with one name again');
  assert.not.match(back.stderr, 'warning');
});

it("provision waits for another app's provision to finish with the web server's files (a host-wide lock), then goes on", async () => {
  await inside(h, 'systemd-run --unit=cutover-test-proxy-lock --quiet flock /run/cutover-proxy.lock sleep 6');
  const before = h.read(siteFile(CADDY));
  manifests[CADDY.app] = h.manifest(manifestObject(CADDY, { server_name: [h.host.address!, 'lock.shop.test'] }));
  try {
    const t = Date.now();
    const running = kit(CADDY, 'provision');
    await new Promise((r) => setTimeout(r, 2_500));
    assert.is(h.read(siteFile(CADDY)), before, 'while the lock is held, the site is not touched');
    const r = await running;
    expectExit(r, 0, 'provision after the wait');
    assert.ok(Date.now() - t >= 4_000, `it waited for the lock (${Date.now() - t} ms)`);
    assert.match(h.read(siteFile(CADDY)), 'lock.shop.test');
  } finally {
    manifests[CADDY.app] = h.manifest(manifestObject(CADDY));
  }
  expectExit(await kit(CADDY, 'provision'), 0, 'provision with one name again');
});

test.run();
