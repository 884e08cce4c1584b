'use client';
import dynamic from 'next/dynamic';

// A chunk loaded after the page: the one an old page asks for after a deploy.
const Lazy = dynamic(() => import('./lazy.js'), { ssr: false });

export default function Client() {
  return <Lazy />;
}
