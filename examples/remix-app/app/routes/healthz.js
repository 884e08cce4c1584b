// GET /healthz: 200 while healthy (the manifest's health.path), 500 when a test makes a sick release.
import { healthy } from '../lib/health.js';

export function loader() {
  return new Response(healthy ? 'ok\n' : 'unhealthy\n', { status: healthy ? 200 : 500, headers: { 'Content-Type': 'text/plain' } });
}
