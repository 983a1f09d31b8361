"""One HTTP request to a channel, its outcome classified: network errors, 5xx and 429
may be retried; other 4xx (and redirects, which are not followed) may not.

Messages name only the URL's origin: robot URLs carry their access token in the path
or query, and signed URLs carry the signature.
"""

import json
import socket

import requests
from django.conf import settings

from .base import TransportError, origin

USER_AGENT = "opscenter-notifications/1"
# The first characters of an error answer's body that go into the delivery's error.
ANSWER_SNIPPET = 200


def request(method: str, url: str, **kwargs) -> requests.Response:
    """Send, and answer the response when it is a 2xx; raise TransportError otherwise."""
    headers = {"User-Agent": USER_AGENT, **(kwargs.pop("headers", None) or {})}
    timeout = settings.OPSCENTER_DELIVERY_TIMEOUT_SECONDS
    where = origin(url)
    try:
        response = requests.request(
            method, url, headers=headers, timeout=timeout, allow_redirects=False, **kwargs
        )
    except requests.Timeout as exc:
        raise TransportError(
            f"no answer from {where} within {timeout:g}s", permanent=False
        ) from exc
    except requests.ConnectionError as exc:
        raise TransportError(f"cannot connect to {where}: {_reason(exc)}", permanent=False) from exc
    except (
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
        requests.exceptions.InvalidHeader,
    ) as exc:
        raise TransportError(f"not a usable URL: {where}", permanent=True) from exc
    except requests.RequestException as exc:
        raise TransportError(
            f"request to {where} failed: {type(exc).__name__}", permanent=False
        ) from exc
    status = response.status_code
    if 200 <= status < 300:
        return response
    answer = snippet(response)
    said = f": {answer}" if answer else ""
    if status == 429 or status >= 500:
        raise TransportError(f"{where} answered {status}{said}", permanent=False, status=status)
    if 300 <= status < 400:
        raise TransportError(
            f"{where} answered {status} (a redirect, not followed: check the URL)",
            permanent=True,
            status=status,
        )
    raise TransportError(f"{where} answered {status}{said}", permanent=True, status=status)


def snippet(response: requests.Response) -> str:
    try:
        text = response.text
    except Exception:  # undecodable: say nothing rather than guess
        return ""
    text = " ".join(text.split())
    return text[:ANSWER_SNIPPET] + ("…" if len(text) > ANSWER_SNIPPET else "")


def answer_json(response: requests.Response) -> dict:
    try:
        data = json.loads(response.content or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def robot_answer(
    response: requests.Response,
    *,
    code_keys: tuple[str, ...],
    message_keys: tuple[str, ...],
    retry_codes: frozenset[int],
    who: str,
) -> None:
    """Robot APIs answer HTTP 200 with an error code in the body: a code other than 0 is
    a refusal (bad signature, keyword, IP, payload), permanent unless it is one of the
    robot's rate limits."""
    data = answer_json(response)
    for key in code_keys:
        code = data.get(key)
        if code not in (None, 0, "0"):
            text = next((str(data[k]) for k in message_keys if data.get(k)), "no message")
            try:
                retry = int(code) in retry_codes
            except (TypeError, ValueError):
                retry = False
            raise TransportError(
                f"{who} refused the message: {key} {code}: {text}"[:500],
                permanent=not retry,
                status=response.status_code,
            )


def _reason(exc: requests.ConnectionError) -> str:
    """Why a connection failed, without the URL requests puts into its message."""
    seen = set()
    cause = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(cause, socket.gaierror):
            return "host name not found"
        if isinstance(cause, socket.timeout | TimeoutError):
            return "timed out"
        text = str(cause)
        if "Connection refused" in text:
            return "connection refused"
        if "Name or service not known" in text or "getaddrinfo failed" in text:
            return "host name not found"
        if "RemoteDisconnected" in text or "closed connection" in text:
            return "the server closed the connection"
        if "SSL" in text or "certificate" in text:
            return "TLS handshake failed"
        nested = cause.args[0] if cause.args and isinstance(cause.args[0], BaseException) else None
        cause = getattr(cause, "reason", None) or nested or cause.__cause__ or cause.__context__
    return "connection failed"
