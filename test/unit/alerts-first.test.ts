/**
 * The local runtime's alerts-first gate (local/alerts-first.ts): while an alert batch runs,
 * telemetry starts no new post, so an alert's posts never queue behind telemetry's on this
 * machine's shared cores; posts already started finish, and telemetry resumes when alerts end.
 */
import { AlertsFirst } from '../../local/alerts-first';
import type { Poster } from '../../lambdas/core/ports';

/** A poster that records the order posts start in and answers when told. */
function recordingPoster(started: string[]) {
  const answers: (() => void)[] = [];
  const poster: Poster = {
    post: (connectionId, text) => {
      started.push(`${connectionId}:${text}`);
      return new Promise((resolve) => answers.push(() => resolve({ outcome: 'ok', retries: 0 })));
    },
  };
  return { poster, answerAll: () => answers.splice(0).forEach((answer) => answer()) };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test('telemetry posts asked for during an alert batch start only after it, in the order asked', async () => {
  const gate = new AlertsFirst();
  const started: string[] = [];
  const telemetry = recordingPoster(started);
  const alerts = recordingPoster(started);
  const gated = gate.behind(telemetry.poster);

  // A telemetry post under way when the alert batch begins is not held back.
  const early = gated.post('c0', 'reading');
  await tick();
  let endBatch!: () => void;
  const batch = gate.run(async () => {
    await alerts.poster.post('c1', 'alert');
    await new Promise<void>((resolve) => (endBatch = resolve));
    await alerts.poster.post('c2', 'alert');
  });
  await tick();
  const held = [gated.post('c1', 'reading'), gated.post('c2', 'reading')];
  alerts.answerAll();
  await tick();
  expect(started).toEqual(['c0:reading', 'c1:alert']);

  endBatch();
  await tick();
  expect(started).toEqual(['c0:reading', 'c1:alert', 'c2:alert']);
  alerts.answerAll();
  await batch;
  await tick();
  // The alert batch is over: the held telemetry goes, oldest first.
  expect(started).toEqual(['c0:reading', 'c1:alert', 'c2:alert', 'c1:reading', 'c2:reading']);
  telemetry.answerAll();
  await Promise.all([early, ...held]);
});

test('with no alert batch running, telemetry posts go at once, and a failed batch does not hold them', async () => {
  const gate = new AlertsFirst();
  const started: string[] = [];
  const telemetry = recordingPoster(started);
  const gated = gate.behind(telemetry.poster);
  const first = gated.post('c1', 'reading');
  await tick();
  expect(started).toEqual(['c1:reading']);
  await expect(gate.run(async () => Promise.reject(new Error('index unreadable')))).rejects.toThrow('index unreadable');
  const second = gated.post('c2', 'reading');
  await tick();
  expect(started).toEqual(['c1:reading', 'c2:reading']);
  telemetry.answerAll();
  await Promise.all([first, second]);
});
