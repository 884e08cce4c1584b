import Client from './client.js';
import { version } from '../lib/version.js';

export const dynamic = 'force-dynamic';

export default function Page() {
  return (
    <main>
      <h1>cutover Next.js example {version}</h1>
      <Client />
    </main>
  );
}
