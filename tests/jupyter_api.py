"""JupyterLab's REST API as the session tests use it: always straight to 127.0.0.1, whatever proxy a test puts
in the environment."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def status(url: str) -> int:
    """The HTTP status `url` answers with; 0 when nothing answers."""
    try:
        with direct.open(url, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code
    except (urllib.error.URLError, OSError):
        return 0


def lab_status(port: int, token: str) -> int:
    return status(f"http://127.0.0.1:{port}/api/status?token={token}")


def put_contents(port: int, token: str, path: str, model: dict) -> None:
    """Saves a file or notebook in the session through its contents API, as the browser does."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/contents/{path}?token={token}", method="PUT",
                                     data=json.dumps(model).encode(), headers={"Content-Type": "application/json"})
    with direct.open(request, timeout=30) as answer:
        assert answer.status in (200, 201)


def put_text(port: int, token: str, path: str, text: str) -> None:
    put_contents(port, token, path, {"type": "file", "format": "text", "content": text})
