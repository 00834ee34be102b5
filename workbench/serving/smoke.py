"""The smoke request of a project's `[deploy]` table, sent straight to a new version (not through the proxy)
before it gets traffic: a version whose /health answers 200 while its /predict fails must not go live."""

from __future__ import annotations

import json

from workbench.projects.spec import Smoke
from workbench.serving.health import TIMEOUT, Http
from workbench.textsafe import printable

EXCERPT = 200


def smoke_check(http: Http, address: str, port: int, smoke: Smoke) -> str | None:
    """None when the version answered the smoke request as the spec expects; else one line saying what it
    answered (its status and the start of its body), for the refusal and the deployment's history. `http` is
    health.local_http on this machine's engine, health.ssh_http(...) for a host's."""
    request = f"{smoke.method} {smoke.path}"
    answer = http(address, port, method=smoke.method, path=smoke.path, body=smoke.body,
                  headers=_headers(smoke.body))
    if answer is None:
        return f"{request} gave no answer within {TIMEOUT:g} s"
    if answer.status != smoke.expect_status:
        expected = f" (expected {smoke.expect_status})" if smoke.expect_status != 200 else ""
        return f"{request} answered HTTP {answer.status}{expected}: {excerpt(answer.body)}"
    if not smoke.expect_json_keys:
        return None
    try:
        data = json.loads(answer.body)
    except (ValueError, UnicodeDecodeError):
        return f"{request} answered {answer.status} but not JSON: {excerpt(answer.body)}"
    missing = [key for key in smoke.expect_json_keys if not isinstance(data, dict) or key not in data]
    if missing:
        names = ", ".join(repr(key) for key in missing)
        return (f"{request} answered {answer.status} but the JSON has no key{'s' if len(missing) > 1 else ''} "
                f"{names}: {excerpt(answer.body)}")
    return None


def excerpt(body: bytes) -> str:
    """The start of a response body on one line, control characters shown as escapes."""
    if not body:
        return "(empty body)"
    text = printable(body[:EXCERPT * 4].decode("utf-8", errors="replace"))
    return text if len(text) <= EXCERPT and len(body) <= EXCERPT * 4 else text[:EXCERPT] + "…"


def _headers(body: bytes | None) -> dict[str, str]:
    if body is None:
        return {}
    try:
        json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {"Content-Type": "application/octet-stream"}
    return {"Content-Type": "application/json"}
