"""A local webhook receiver for the alert benchmark: a threaded HTTP server on
127.0.0.1 in a process of its own (so its work is not charged to the monitor it
measures). Every POST is answered 200 and counted, with the delivery id it carries
(X-Opscenter-Delivery); GET /stats answers {"requests", "deliveries", "events"}.

`python -m bench.receiver` prints the port it listens on, then serves until stdin
closes or it is terminated. `Receiver` starts and stops one from a benchmark."""

import json
import subprocess
import sys
import threading
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.deliveries: set[str] = set()
        self.events: Counter = Counter()


class _Handler(BaseHTTPRequestHandler):
    counts: _Counts
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 — http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        with self.counts.lock:
            self.counts.requests += 1
            self.counts.deliveries.add(self.headers.get("X-Opscenter-Delivery", ""))
            self.counts.events[self.headers.get("X-Opscenter-Event", "")] += 1
        self._answer(b'{"ok": true}')

    def do_GET(self) -> None:  # noqa: N802
        with self.counts.lock:
            body = {
                "requests": self.counts.requests,
                "deliveries": len(self.counts.deliveries - {""}),
                "events": dict(self.counts.events),
            }
        self._answer(json.dumps(body).encode())

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:  # one line per request would cost more
        pass


def serve() -> None:
    handler = type("Handler", (_Handler,), {"counts": _Counts()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.request_queue_size = 128
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    server.shutdown()


class Receiver:
    """One receiver process: `url` to post to, `stats()` of what it got."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.receiver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        port = self.process.stdout.readline().decode().strip()
        if not port.isdigit():
            self.stop()
            raise RuntimeError("the webhook receiver did not start")
        self.url = f"http://127.0.0.1:{port}/hook"

    def stats(self) -> dict:
        with urllib.request.urlopen(self.url.replace("/hook", "/stats"), timeout=10) as answer:
            return json.loads(answer.read())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "Receiver":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    serve()
