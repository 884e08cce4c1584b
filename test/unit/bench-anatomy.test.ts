// Tests how the verbs bench takes an activation apart (test/bench/verbs.ts activateAnatomy): what counts as waiting, what as the kit's own share, and child processes inside or outside the waits.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { activateAnatomy, type ActivateTrace } from '../bench/verbs.ts';

const trace: ActivateTrace = {
  bootMs: 100,
  steps: [
    { title: 'preflight 0123456789ab on 127.0.0.1:40000', startMs: 200, endMs: 600 },
    { title: 'switch active to 0123456789ab', startMs: 600, endMs: 601 },
    { title: 'start app@b.service beside app@a.service', startMs: 610, endMs: 700 },
    { title: "health gate: app@b.service serves on the app's socket", startMs: 700, endMs: 900 },
    { title: 'stop app@a.service (it finishes its requests in flight, up to 30 s)', startMs: 900, endMs: 950 },
  ],
  children: [
    { startMs: 150, endMs: 153, argv: 'flock --exclusive --nonblock 3' },
    { startMs: 160, endMs: 180, argv: 'systemctl list-units --all --plain' },
    { startMs: 165, endMs: 185, argv: 'systemctl show --timestamp=unix' },
    { startMs: 190, endMs: 205, argv: 'systemctl show --timestamp=unix' },
    { startMs: 210, endMs: 230, argv: 'systemctl stop cutover-preflight-app-0123456789ab.service' },
    { startMs: 601, endMs: 609, argv: 'systemctl show --timestamp=unix' },
    { startMs: 620, endMs: 690, argv: 'systemctl start app@b.service' },
  ],
  exitMs: 960,
};

test('the waits are the preflight, start, health gate and stop steps; the switch is the kit\'s own', () => {
  const a = activateAnatomy(trace, 1000);
  assert.is(a.waitsMs, 400 + 90 + 200 + 50);
  assert.is(a.kitMs, 1000 - 740);
  assert.is(a.nodeBootMs, 100);
  assert.is(a.processMs, 40, 'wall after the process\'s own clock stopped');
});

test('child processes count once where they overlap, and only for the part outside the waits', () => {
  const a = activateAnatomy(trace, 1000);
  // flock 3 + list-units ‖ show 160–185 = 25 + show 190–200 (its last 5 ms are in preflight) 10 + show 8; preflight's own stop and the slot start are waits.
  assert.is(a.childrenOutsideWaitsMs, 3 + 25 + 10 + 8);
  assert.is(a.javascriptMs, 960 - 100 - 740 - 46);
  assert.equal(a.outside, ['flock --exclusive 3 ms', 'systemctl list-units 20 ms', 'systemctl show 20 ms', 'systemctl show 10 ms', 'systemctl show 8 ms']);
  assert.is(a.nodeBootMs + a.javascriptMs + a.childrenOutsideWaitsMs + a.processMs, a.kitMs, 'the parts add up to the kit\'s share');
});

test('a step the kit never finished (it was stopped) lasts until the process exits', () => {
  const cut: ActivateTrace = { ...trace, steps: [{ title: 'preflight x on 127.0.0.1:1', startMs: 200, endMs: 0 }], children: [] };
  const a = activateAnatomy(cut, 1000);
  assert.is(a.waitsMs, 760);
});

test.run();
