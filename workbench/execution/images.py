"""Image resolution without surprises: the engine's local image first; a pull (with progress) only where
a registry answers; a project Dockerfile built under a tag derived from the build context's content."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from workbench.errors import WorkbenchError

Progress = Callable[[str], None]


def _short(exc: Exception) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    return str(text).strip().splitlines()[0][:300]


def local_image_id(client: Any, ref: str) -> str | None:
    import docker.errors

    try:
        return client.images.get(ref).id
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:
        if getattr(exc, "status_code", None) == 404:
            return None
        raise WorkbenchError(f"cannot look up image {ref}: {_short(exc)}") from None


def pull(client: Any, ref: str, progress: Progress) -> str:
    import docker.errors
    from docker.utils import parse_repository_tag

    repository, tag = parse_repository_tag(ref)
    progress(f"image {ref} is not on this engine; pulling it")
    layers: dict[str, str] = {}
    try:
        for event in client.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
            if "error" in event:
                raise WorkbenchError(f"cannot pull image {ref}: {event['error']}")
            status, layer = event.get("status", ""), event.get("id")
            if layer and layers.get(layer) != status:
                layers[layer] = status
                detail = event.get("progress", "") if status == "Downloading" else ""
                progress(f"  {layer}: {status} {detail}".rstrip())
            elif not layer and status:
                progress(f"  {status}")
    except docker.errors.APIError as exc:
        raise WorkbenchError(
            f"image {ref} is not on this engine and could not be pulled: {_short(exc)}",
            hint="docker load/build it, or check the registry name and that it is reachable",
        ) from None
    image_id = local_image_id(client, ref)
    if image_id is None:
        raise WorkbenchError(f"pulled {ref} but the engine does not list it")
    return image_id


def ensure_image(client: Any, ref: str, progress: Progress) -> str:
    """The id of `ref` on the engine, pulling it (with progress) only when it is not there."""
    return local_image_id(client, ref) or pull(client, ref, progress)


def build(client: Any, context: Path, dockerfile: str, tag: str, progress: Progress) -> str:
    """Builds `dockerfile` in `context` as `tag` unless that tag exists; streams the build output."""
    import docker.errors

    existing = local_image_id(client, tag)
    if existing:
        return existing
    progress(f"building {dockerfile} as {tag}")
    tail: list[str] = []
    try:
        for event in client.api.build(path=str(context), dockerfile=dockerfile, tag=tag, rm=True,
                                      forcerm=True, decode=True):
            if "error" in event:
                detail = event["error"].strip().splitlines()[-1] if event["error"].strip() else "unknown error"
                raise WorkbenchError(f"building {dockerfile} failed: {detail[:300]}",
                                     hint="the build output above shows the failing step")
            text = event.get("stream", "")
            for line in text.splitlines():
                if line.strip():
                    tail.append(line)
                    progress(f"  {line}")
    except docker.errors.APIError as exc:
        raise WorkbenchError(f"building {dockerfile} failed: {_short(exc)}") from None
    image_id = local_image_id(client, tag)
    if image_id is None:
        raise WorkbenchError(f"building {dockerfile} produced no image ({' / '.join(tail[-2:])})")
    return image_id
