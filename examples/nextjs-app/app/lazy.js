'use client';
import { version } from '../lib/version.js';

export default function Lazy() {
  return <p id="lazy">Loaded lazily by {version}.</p>;
}
