"""The example WSGI app cutover deploys: /health, / and /version, graceful SIGTERM, test switches.

Run it with Debian's gunicorn (`gunicorn app:application`; under systemd socket activation gunicorn
takes the inherited socket itself when LISTEN_PID is its own pid, so ExecStart must run gunicorn
directly) or with the standard library alone (`python3 app.py`, serving on PORT, or on the
inherited fd 3 when LISTEN_FDS is set).

Environment: PORT (default 3000), HOST (default 127.0.0.1), STARTUP_DELAY_MS (default 300),
GREETING (echoed by GET /). A file BEHAVIOUR next to this file switches test behaviours:
  crash            fail at start (python3 app.py exits 1; gunicorn's worker fails to boot, gunicorn exits 3)
  unhealthy        serve, but GET /health answers 500
  slow-start=<ms>  wait <ms> before serving (overrides STARTUP_DELAY_MS)
  hang             never serve (under gunicorn the master holds the port; requests time out)
No third-party packages: the standard library only.
"""
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from socketserver import TCPServer, ThreadingMixIn
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

APP_DIR = os.path.dirname(os.path.abspath(__file__))
MAX_SLOW_MS = 60_000


def read_app_file(name):
    try:
        with open(os.path.join(APP_DIR, name), encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def parse_behaviour(text):
    behaviour = {"crash": False, "unhealthy": False, "hang": False, "slow_start_ms": None}
    for word in (text or "").split():
        slow = re.fullmatch(r"slow-start=(\d+)", word)
        if slow:
            behaviour["slow_start_ms"] = int(slow.group(1))
        elif word in ("crash", "unhealthy", "hang"):
            behaviour[word] = True
        elif word != "build-fail":
            print(f'BEHAVIOUR: ignoring unknown switch "{word}"', file=sys.stderr)
    return behaviour


def startup_delay_ms(behaviour):
    if behaviour["slow_start_ms"] is not None:
        return behaviour["slow_start_ms"]
    try:
        return max(int(os.environ.get("STARTUP_DELAY_MS", "300")), 0)
    except ValueError:
        return 300


BEHAVIOUR = parse_behaviour(read_app_file("BEHAVIOUR"))
VERSION = (read_app_file("VERSION") or "unknown").strip()
# The release directory's name: the service's WorkingDirectory is the `active` symlink.
RELEASE = os.path.basename(os.path.realpath(os.getcwd()))


def boot(under_server):
    """Applies the start-up switches; runs at import under gunicorn, before binding under python3."""
    if BEHAVIOUR["crash"]:
        print("crashing at start on purpose (BEHAVIOUR says crash)", file=sys.stderr, flush=True)
        if under_server:
            raise RuntimeError("BEHAVIOUR says crash")
        sys.exit(1)
    if BEHAVIOUR["hang"]:
        print("never serving on purpose (BEHAVIOUR says hang)", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    time.sleep(startup_delay_ms(BEHAVIOUR) / 1000)


def respond(start_response, status, content_type, body):
    data = body.encode("utf-8")
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data)))])
    return [data]


def summary():
    return {
        "version": VERSION,
        "release": RELEASE,
        "pid": os.getpid(),
        "greeting": os.environ.get("GREETING"),
    }


def slow(environ, start_response):
    """GET /slow?ms=N answers after N ms: an in-flight request for the graceful-stop tests."""
    try:
        ms = int(parse_qs(environ.get("QUERY_STRING", "")).get("ms", ["0"])[0])
    except ValueError:
        ms = 0
    ms = min(max(ms, 0), MAX_SLOW_MS)
    time.sleep(ms / 1000)
    return respond(start_response, "200 OK", "text/plain", f"slept {ms} ms\n")


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return respond(start_response, "405 Method Not Allowed", "text/plain", "GET only\n")
    if path == "/health":
        if BEHAVIOUR["unhealthy"]:
            return respond(start_response, "500 Internal Server Error", "text/plain", "unhealthy\n")
        return respond(start_response, "200 OK", "text/plain", "ok\n")
    if path == "/":
        return respond(start_response, "200 OK", "application/json", json.dumps(summary()) + "\n")
    if path == "/version":
        return respond(start_response, "200 OK", "text/plain", VERSION + "\n")
    if path == "/slow":
        return slow(environ, start_response)
    return respond(start_response, "404 Not Found", "text/plain", "not found\n")


def inherited_fd():
    """Socket activation: systemd passes the listening socket as fd 3 and sets LISTEN_FDS."""
    try:
        return 3 if int(os.environ.get("LISTEN_FDS", "0")) >= 1 else None
    except ValueError:
        return None


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # one line per request would flood the journal under load
        pass


class AppServer(ThreadingMixIn, WSGIServer):
    """wsgiref's server, threaded, that can adopt an inherited socket; closing it waits for requests."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def server_bind(self):
        fd = inherited_fd()
        if fd is None:
            TCPServer.server_bind(self)
        else:
            self.socket.close()
            self.socket = socket.socket(fileno=fd)
        host, port = self.socket.getsockname()[:2]
        self.server_name, self.server_port = str(host), port
        self.setup_environ()


def make_server():
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "3000"))
    AppServer.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = AppServer((host, port), QuietHandler)
    server.set_app(application)
    return server


# What cutover asks of every app on SIGTERM: stop accepting new connections, finish the requests
# already in flight, then exit 0. (gunicorn does this itself: its graceful_timeout.)
def stop_gracefully(server):
    def on_signal(signum, _frame):
        print(f"{signal.Signals(signum).name}: not accepting new connections; finishing requests in flight", flush=True)
        if server is None:
            sys.exit(0)
        threading.Thread(target=server.shutdown, daemon=True).start()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)


def main():
    stop_gracefully(None)
    boot(under_server=False)
    server = make_server()
    stop_gracefully(server)
    where = "inherited socket fd 3" if inherited_fd() is not None else f"{server.server_name}:{server.server_port}"
    print(f"version {VERSION} (release {RELEASE}, pid {os.getpid()}) listening on {where}", flush=True)
    server.serve_forever(poll_interval=0.1)
    server.server_close()  # closes the listening socket, then waits for the requests in flight
    print("all requests finished; exiting", flush=True)


if __name__ == "__main__":
    main()
else:
    boot(under_server=True)
