// Loaded lazily by the page, in a chunk of its own.
import { version } from './version.js';

export default function Lazy() {
  return <p id="lazy">Loaded lazily by {version}.</p>;
}
