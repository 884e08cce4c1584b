# Whether /health answers 200: a test sets it to False to make a release that fails its health check.
HEALTHY = True
