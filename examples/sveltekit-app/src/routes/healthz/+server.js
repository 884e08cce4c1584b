// The health check cutover polls: 200, or 500 in a release built with healthy = false.
import { healthy } from '$lib/health.js';

export function GET() {
	return new Response(healthy ? 'ok\n' : 'sick\n', { status: healthy ? 200 : 500 });
}
