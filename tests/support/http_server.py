"""A local HTTP server on 127.0.0.1 (an ephemeral port) serving fixture files, with the
faults a download meets: errors, truncated bodies, a server that never answers."""

import contextlib
import http.server
import threading
import time
import urllib.parse


class Route:
    """What the server answers for one path.

    Attributes:
        body: the bytes served.
        status: HTTP status (200 serves the body).
        mode: `ok`; `truncate` (declares the full length, sends half, closes);
            `hang` (accepts and never answers); `fail_first` (HTTP 500 on the first
            request, then the body); `slow` (the body in 16 pieces, 50 ms apart).
    """

    def __init__(self, body=b"", status=200, mode="ok"):
        self.body, self.status, self.mode = body, status, mode
        self.requests = 0


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):  # noqa: N802
        path = urllib.parse.urlsplit(self.path).path
        route = self.server.routes.get(path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        route.requests += 1
        if route.mode == "hang":
            self.server.stop.wait(30)
            return
        if route.status != 200 or (route.mode == "fail_first" and route.requests == 1):
            self.send_error(route.status if route.status != 200 else 500)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        if route.mode == "truncate":
            self.wfile.write(route.body[: len(route.body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if route.mode == "slow":
            step = max(1, len(route.body) // 16)
            for i in range(0, len(route.body), step):
                self.wfile.write(route.body[i : i + step])
                self.wfile.flush()
                time.sleep(0.05)
            return
        self.wfile.write(route.body)


@contextlib.contextmanager
def serve(routes):
    """Serves `{path: Route}`; yields the base URL `http://127.0.0.1:<port>`."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.routes = routes
    server.stop = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
