// An ISR page: prerendered by the build, regenerated at most every 2 s when asked for. The release is read-only,
// so next.config.js keeps regenerated pages in memory (isrFlushToDisk: false); the frameworks test checks it.
export const revalidate = 2;

export default function Isr() {
  return (
    <main>
      <p>rendered at <time id="rendered">{new Date().toISOString()}</time></p>
    </main>
  );
}
