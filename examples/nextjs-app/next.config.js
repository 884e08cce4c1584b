/** @type {import('next').NextConfig} */
module.exports = {
  poweredByHeader: false,
  // cutover seals each release read-only: regenerated ISR pages and the fetch cache stay in memory instead of
  // being written into .next/server and .next/cache/fetch-cache (EACCES there otherwise).
  experimental: { isrFlushToDisk: false },
};
