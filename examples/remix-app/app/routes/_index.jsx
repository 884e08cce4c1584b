// The page: the version, and a chunk loaded after the page (the one an old page asks for after a deploy).
import { lazy, Suspense, useEffect, useState } from 'react';
import { version } from '../lib/version.js';

const Lazy = lazy(() => import('../lib/lazy.jsx'));

export default function Index() {
  const [show, setShow] = useState(false);
  useEffect(() => setShow(true), []);
  return (
    <main>
      <h1>cutover Remix example {version}</h1>
      {show && (
        <Suspense fallback={null}>
          <Lazy />
        </Suspense>
      )}
    </main>
  );
}
