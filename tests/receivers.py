"""Real local servers that stand in for the outside world in tests: an HTTP receiver (a
webhook, a chat robot, an SMS provider) and an SMTP server.

Fixtures (imported into tests/conftest.py, so every test may ask for them):

    http_receiver  .url, .url_for(path), .requests (ReceivedRequest: method, path,
                   query, headers, body, json), .script(200, 500, (400, "bad")),
                   .delay (seconds before each answer), .wait_for(n)
    smtp_server    .host, .port, .messages (email.message.Message with .envelope_to),
                   .refuse(address, code, text); Django's SMTP backend points at it
    closed_port    a 127.0.0.1 port nobody listens on
"""

import email
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller

DEFAULT_BODY = b'{"errcode": 0, "errmsg": "ok", "code": 0, "msg": "success"}'


@dataclass
class ReceivedRequest:
    method: str
    path: str  # without the query
    query: dict[str, str]
    headers: dict[str, str]  # names as sent
    body: bytes
    raw_query: str = ""  # as it arrived, still URL-encoded

    @property
    def json(self):
        return json.loads(self.body or b"null")

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class Answer:
    status: int = 200
    body: bytes = DEFAULT_BODY
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


class HttpReceiver:
    """A threading HTTP server on 127.0.0.1 that records every request and answers the
    scripted statuses in order (then 200 with DEFAULT_BODY)."""

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self._answers: list[Answer] = []
        self._lock = threading.Lock()
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                with receiver._lock:
                    receiver.requests.append(
                        ReceivedRequest(
                            self.command, parts.path, query, dict(self.headers), body, parts.query
                        )
                    )
                    answer = receiver._answers.pop(0) if receiver._answers else Answer()
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format, *args):  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def url_for(self, path: str = "/hook") -> str:
        return self.url + path

    def script(self, *answers) -> "HttpReceiver":
        """Answers for the next requests: a status, (status, body) or (status, body, headers);
        a str body is sent as text/plain, a dict as JSON."""
        with self._lock:
            for answer in answers:
                if isinstance(answer, int):
                    self._answers.append(Answer(answer))
                    continue
                status, body, *rest = answer
                headers = rest[0] if rest else None
                if isinstance(body, dict):
                    body, ctype = json.dumps(body).encode(), "application/json"
                elif isinstance(body, str):
                    body, ctype = body.encode(), "text/plain; charset=utf-8"
                else:
                    ctype = "application/octet-stream"
                self._answers.append(Answer(status, body, headers or {"Content-Type": ctype}))
        return self

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.requests

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def http_receiver():
    receiver = HttpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _SmtpHandler:
    def __init__(self, server: "SmtpServer"):
        self.server = server

    async def handle_RCPT(self, smtp_server, session, envelope, address, rcpt_options):
        refusal = self.server.refusals.get(address.lower())
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp_server, session, envelope):
        message = email.message_from_bytes(envelope.content)
        message.envelope_to = list(envelope.rcpt_tos)
        self.server.messages.append(message)
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(self) -> None:
        self.messages: list = []
        self.refusals: dict[str, str] = {}
        self.host = "127.0.0.1"
        with socket.socket() as sock:
            sock.bind((self.host, 0))
            self.port = sock.getsockname()[1]
        self._controller = Controller(_SmtpHandler(self), hostname=self.host, port=self.port)
        self._controller.start()

    def refuse(self, address: str, code: int = 550, text: str = "No such user") -> None:
        self.refusals[address.lower()] = f"{code} {text}"

    def close(self) -> None:
        self._controller.stop()


@pytest.fixture
def smtp_server(settings):
    server = SmtpServer()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = server.host
    settings.EMAIL_PORT = server.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    yield server
    server.close()
