// Whether /healthz answers 200: a test sets it to false to make a release that fails its health check.
export const healthy = true;
