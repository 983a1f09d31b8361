"""Send the request of an http node; a non-2xx answer fails the run.

Run as `python -m apps.instances.executors.http_runner` with {"request": {...}}
as JSON on stdin. The request object: url (required, http or https), method
(default GET), headers (object), body (text, or a JSON value sent as JSON),
timeout (seconds, default DEFAULT_TIMEOUT). Headers are never logged: they
often carry credentials.
"""

import json
import sys
import time

MAX_BODY_CHARS = 2000
DEFAULT_TIMEOUT = 300.0


class BadRequestSpec(ValueError):
    pass


def parse(spec: dict) -> dict:
    """Keyword arguments for requests.request(); BadRequestSpec names the field."""
    url = spec.get("url")
    if not isinstance(url, str) or not url.strip():
        raise BadRequestSpec("url is required")
    if not url.lower().startswith(("http://", "https://")):
        raise BadRequestSpec(f"url must start with http:// or https://, got {url!r}")
    method = spec.get("method") or "GET"
    if not isinstance(method, str) or not method.isalpha():
        raise BadRequestSpec(f"method must be an HTTP method name, got {method!r}")
    headers = spec.get("headers") or {}
    if not isinstance(headers, dict):
        raise BadRequestSpec("headers must be an object")
    timeout = spec.get("timeout", DEFAULT_TIMEOUT)
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise BadRequestSpec(f"timeout must be a positive number of seconds, got {timeout!r}")
    kwargs = {
        "method": method.upper(),
        "url": url.strip(),
        "headers": {str(k): str(v) for k, v in headers.items()},
        "timeout": timeout,
    }
    body = spec.get("body")
    if isinstance(body, str):
        kwargs["data"] = body.encode("utf-8")
    elif body is not None:
        kwargs["json"] = body
    return kwargs


def run(spec: dict, out=sys.stdout) -> int:
    import requests

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    try:
        kwargs = parse(spec)
    except BadRequestSpec as exc:
        say(f"ERROR: invalid http request: {exc}")
        return 2
    say(f"{kwargs['method']} {kwargs['url']}")
    started = time.monotonic()
    try:
        response = requests.request(**kwargs)
    except requests.RequestException as exc:
        say(f"ERROR: request failed: {exc}")
        return 1
    took = time.monotonic() - started
    say(f"-> HTTP {response.status_code} {response.reason} in {took:.3f}s")
    body = response.text
    if body:
        say(body[:MAX_BODY_CHARS])
        if len(body) > MAX_BODY_CHARS:
            say(f"(body truncated: {len(body)} characters, the first {MAX_BODY_CHARS} shown)")
    if not 200 <= response.status_code < 300:
        say(f"ERROR: HTTP {response.status_code} is not a success status")
        return 1
    return 0


def main() -> int:
    try:
        spec = json.load(sys.stdin)["request"]
        if not isinstance(spec, dict):
            raise TypeError("request must be an object")
    except (ValueError, KeyError, TypeError) as exc:
        print(f"ERROR: bad runner input: {exc}", flush=True)
        return 2
    return run(spec)


if __name__ == "__main__":
    sys.exit(main())
