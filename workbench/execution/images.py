"""Image resolution without surprises: the engine's local image first; a pull (with progress) only where
a registry answers; a project Dockerfile built under a tag derived from the build context's content."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterable

from workbench.errors import WorkbenchError

Progress = Callable[[str], None]
BuildLog = Callable[[str, str], None]  # (stream "out" | "err", one line of build output)
INSTANCE_LABEL = "workbench.instance"
# The tags `Workbench._image_for` gives the images it builds: workbench/<project>:<snapshot hash[:16]>.
BUILT_TAG = re.compile(r"^workbench/[^:@\s]+:[0-9a-f]{16}$")
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")


class BuildFailed(WorkbenchError):
    """A Dockerfile build that failed; `step` says which step ("step 3 (RUN exit 3)"), None when it
    failed before its first step (a missing or malformed Dockerfile)."""

    def __init__(self, message: str, *, step: str | None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.step = step


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


def build(client: Any, context: Path, dockerfile: str, tag: str, progress: Progress, *,
          log: BuildLog | None = None, labels: dict[str, str] | None = None) -> str:
    """Builds `dockerfile` in `context` as `tag` unless that tag exists; streams the build output to
    `progress` and, line by line with its stream, to `log` (the error last, as "err"). A failure is
    BuildFailed naming the step that failed."""
    import docker.errors

    existing = local_image_id(client, tag)
    if existing:
        return existing
    progress(f"building {dockerfile} as {tag}")
    tail: list[str] = []
    step: str | None = None
    pulled: dict[str, str] = {}

    def record(stream: str, line: str, show: bool = True) -> None:
        if show:
            progress(f"  {line}")
        if log is not None:
            log(stream, line)

    def failed(detail: str) -> BuildFailed:
        for line in detail.strip().splitlines() or ["unknown error"]:
            record("err", line, show=False)  # said once, by the error itself
        last = detail.strip().splitlines()[-1] if detail.strip() else "unknown error"
        where = f" at {step}" if step else ""
        return BuildFailed(f"building {dockerfile} failed{where}: {last[:300]}", step=step)

    try:
        for event in client.api.build(path=str(context), dockerfile=dockerfile, tag=tag, rm=True,
                                      forcerm=True, decode=True, labels=labels):
            if "error" in event:
                raise failed(str(event["error"]))
            for line in event.get("stream", "").splitlines():
                if line.strip():
                    match = _STEP.match(line.strip())
                    if match:
                        step = f"step {match[1]} ({match[3].strip()[:80]})"  # of N: our labels add steps
                    tail.append(line)
                    record("out", line)
            status, layer = event.get("status"), event.get("id")
            if status and "progress" not in event and pulled.get(layer or "") != status:  # FROM pulled
                pulled[layer or ""] = status
                record("out", f"{layer}: {status}" if layer else status)
    except docker.errors.APIError as exc:  # before any step: no Dockerfile, a parse error, a bad context
        raise failed(_short(exc)) from None
    image_id = local_image_id(client, tag)
    if image_id is None:
        raise WorkbenchError(f"building {dockerfile} produced no image ({' / '.join(tail[-2:])})")
    return image_id


def built_images(client: Any, instance: str, recorded: set[str]) -> dict[str, list[str]]:
    """The images Workbench built for this data dir: id -> its workbench/<project>:<hash> tags. An image
    counts when it carries this instance's label, or (built before images were labelled) when one of this
    data dir's runs recorded its id. Anything else, whatever its tag, is not ours."""
    found: dict[str, list[str]] = {}
    for summary in client.api.images():
        tags = [t for t in summary.get("RepoTags") or [] if BUILT_TAG.match(t)]
        if not tags:
            continue
        labels = summary.get("Labels") or {}
        if labels.get(INSTANCE_LABEL) == instance or summary["Id"] in recorded:
            found[summary["Id"]] = tags
    return found


def remove_images(client: Any, doomed: dict[str, list[str]]) -> tuple[int, int]:
    """Untags each image's tags (the last untag deletes it); returns (images deleted, bytes freed). An image
    a container still uses, or that also carries a tag not given here, stays. The bytes are those of the
    layers no remaining image shares (busybox's layers under a removed image are not counted)."""
    import docker.errors

    if not doomed:
        return 0, 0
    before = _chains(client)
    removed = []
    for image_id, tags in doomed.items():
        try:
            for tag in tags:
                client.api.remove_image(tag)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if getattr(exc, "status_code", None) != 409:  # 409: a container uses it; it stays
                raise WorkbenchError(f"cannot remove image {tags[0]}: {_short(exc)}") from None
            continue
        if local_image_id(client, image_id) is None:
            removed.append(image_id)
    remaining = {summary["Id"] for summary in client.api.images(all=True)}
    return len(removed), _freed(before, removed, remaining)


def _chains(client: Any) -> dict[str, tuple[tuple[str, ...], int]]:
    """Every image (intermediate ones too) -> (its layer chain, its size)."""
    import docker.errors

    out: dict[str, tuple[tuple[str, ...], int]] = {}
    for summary in client.api.images(all=True):
        try:
            attrs = client.api.inspect_image(summary["Id"])
        except docker.errors.NotFound:
            continue
        out[summary["Id"]] = (tuple((attrs.get("RootFS") or {}).get("Layers") or ()), int(attrs.get("Size") or 0))
    return out


def _freed(before: dict[str, tuple[tuple[str, ...], int]], removed: Iterable[str], remaining: set[str]) -> int:
    """Bytes of the layers the removed images held that no remaining image has. A layer is stored once per
    chain (its prefix of layers), an image's size is the sum of its chain's layers, so what removing an
    image frees is its size less the size of the longest prefix of its chain still stored."""
    sizes = {chain: size for chain, size in before.values()}
    sizes[()] = 0
    stored = {chain[:i] for image, (chain, _) in before.items() if image in remaining
              for i in range(len(chain) + 1)}
    stored.add(())
    freed = 0
    for image in sorted((i for i in removed if i in before), key=lambda i: len(before[i][0])):
        chain, size = before[image]
        kept = max(i for i in range(len(chain) + 1) if chain[:i] in stored)
        known = max(i for i in range(kept + 1) if chain[:i] in sizes)  # an unknown prefix size: count from below it
        freed += max(0, size - sizes[chain[:known]])
        stored.update(chain[:i] for i in range(len(chain) + 1))  # counted once, however many removed images share it
    return freed
