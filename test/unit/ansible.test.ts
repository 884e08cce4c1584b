// unit tier: the Ansible playbooks parse (ansible-playbook --syntax-check against the example inventory), and the recap parser.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ANSIBLE_DIR, parseRecap } from '../helpers/fleet.ts';
import { commandMissing, requiring } from '../helpers/prereq.ts';

const it = requiring(commandMissing('ansible-playbook', ['--version'], 'apt-get install ansible; test/setup.sh does'), test);
const inventory = path.join(ANSIBLE_DIR, 'inventory', 'example', 'hosts.ini');

for (const playbook of ['site.yml', 'prepare.yml', 'rollout.yml', 'status.yml', 'rollback.yml']) {
  it(`ansible/${playbook} passes ansible-playbook --syntax-check`, () => {
    const r = spawnSync('ansible-playbook', ['--syntax-check', '-i', inventory, playbook], {
      cwd: ANSIBLE_DIR,
      encoding: 'utf8',
      env: { ...process.env, ANSIBLE_CONFIG: path.join(ANSIBLE_DIR, 'ansible.cfg'), ANSIBLE_NOCOLOR: '1' },
    });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.not.match(r.stderr, /\[WARNING\]/, r.stderr);
  });
}

test('parseRecap reads the PLAY RECAP lines per host', () => {
  const out = `TASK [x] ***\nok: [web1]\n\nPLAY RECAP *********\n` +
    `web1                       : ok=17   changed=0    unreachable=0    failed=0    skipped=6    rescued=0    ignored=0\n` +
    `localhost                  : ok=1    changed=2    unreachable=0    failed=1    skipped=0    rescued=0    ignored=0\n`;
  assert.equal(parseRecap(out).web1?.changed, 0);
  assert.equal(parseRecap(out).web1?.ok, 17);
  assert.equal(parseRecap(out).localhost?.failed, 1);
  assert.equal(parseRecap('no recap'), {});
});

test.run();
