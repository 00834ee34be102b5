"""Image resolution without surprises: the engine's local image first; a pull (with progress) only where
a registry answers; a project Dockerfile built under a tag derived from its build inputs' content."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterable

from workbench.errors import WorkbenchError
from workbench.formatting import EngineOutput, human_bytes
from workbench.projects.dockerfile import instructions

Progress = Callable[[str], None]
BuildLog = Callable[[str, str], None]  # (stream "out" | "err", one line of build output)
INSTANCE_LABEL = "workbench.instance"
# The tags `Workbench._image_for` gives the images it builds: workbench/<project>:<build inputs key[:16]>
# (projects/dockerfile.py: the Dockerfile and the files its COPY/ADD lines take).
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


SEND_PROGRESS_BYTES = 32 << 20  # a progress line per this many bytes sent


def ensure_image_on(client: Any, ref: str, progress: Progress, where: str, source: Any | None) -> str:
    """The id of `ref` on the engine of the host `where`: the host's own image first; else the
    workstation's (`source`, when it has it), streamed over (docker save → docker load), said with its size;
    else a pull on the host, where a registry answers there; else one error naming the host and image."""
    found = local_image_id(client, ref)
    if found:
        return found
    if source is not None and local_image_id(source, ref) is not None:
        return send_image(source, client, ref, progress, where)
    try:
        return pull(client, ref, lambda line: progress(line.replace("this engine", where)))
    except WorkbenchError as exc:
        raise WorkbenchError(f"image {ref} is on neither {where} nor this workstation, and {where} could not pull "
                             f"it: {exc.message.split(': ', 1)[-1]}",
                             hint=f"build or load it on {where} or here, or check the registry name") from None


def send_image(source: Any, target: Any, ref: str, progress: Progress, where: str) -> str:
    """Streams an image from the workstation's engine to a host's (`docker save | docker load`, never
    written to disk on either side), with progress; its id on the host."""
    import docker.errors

    size = image_size(source, ref)
    progress(f"image {ref} is not on {where}; sending it from this workstation ({human_bytes(size)} unpacked)")
    sent = [0, 0]

    def counted() -> Any:
        for block in source.api.get_image(ref, chunk_size=1 << 20):
            sent[0] += len(block)
            if sent[0] - sent[1] >= SEND_PROGRESS_BYTES:
                sent[1] = sent[0]
                progress(f"  sent {human_bytes(sent[0])} of about {human_bytes(size)}")
            yield block

    try:
        for event in target.api.load_image(counted()) or []:
            if isinstance(event, dict) and "error" in event:
                raise WorkbenchError(f"{where} could not load image {ref}: {event['error']}")
    except docker.errors.APIError as exc:
        raise WorkbenchError(f"{where} could not load image {ref}: {_short(exc)}") from None
    except OSError as exc:
        raise WorkbenchError(f"sending image {ref} to {where} failed: {str(exc).splitlines()[0][:200]}",
                             hint="launch again: the image is sent again from the start") from None
    image_id = local_image_id(target, ref)
    if image_id is None:
        raise WorkbenchError(f"sent image {ref} to {where}, but its engine does not list it")
    progress(f"  image {ref} loaded on {where}: {human_bytes(sent[0])} sent")
    return image_id


def build(client: Any, context: Path, dockerfile: str, tag: str, progress: Progress, *,
          log: BuildLog | None = None, labels: dict[str, str] | None = None) -> str:
    """Builds `dockerfile` in `context` as `tag` unless that tag exists; streams the build output to
    `progress` (as EngineOutput) and, line by line with its stream, to `log` (the error last, as "err"). While
    every step comes from the cache its output is held back: a build that did nothing is one line, `image
    TAG: up to date`. A failure is BuildFailed naming the step that failed, shortened by whole words."""
    import textwrap

    import docker.errors

    from workbench.textsafe import log_text

    existing = local_image_id(client, tag)
    if existing:
        return existing
    tail: list[str] = []
    step: str | None = None
    pulled: dict[str, str] = {}
    held: list[str] | None = []  # progress lines kept back while every step so far was cached
    answer_due = False  # a step was announced whose first answer says whether it is cached

    def working() -> None:
        nonlocal held
        if held is not None:
            progress(f"building {dockerfile} as {tag}")
            for line in held:
                progress(EngineOutput(f"  {line}"))
            held = None

    def record(stream: str, line: str, show: bool = True) -> None:
        if show and held is not None:
            held.append(line)
        elif show:
            progress(EngineOutput(f"  {line}"))
        if log is not None:
            log(stream, line)

    def failed(detail: str) -> BuildFailed:
        for line in detail.strip().splitlines() or ["unknown error"]:
            record("err", line, show=False)  # said once, by the error itself
        plain = [log_text(line) for line in detail.strip().splitlines()]
        last = next((line for line in reversed(plain) if line.strip()), "unknown error")
        where = f" at {step}" if step else ""
        return BuildFailed(f"building {dockerfile} failed{where}: {textwrap.shorten(last, 300, placeholder=' …')}",
                           step=step)

    try:
        for event in client.api.build(path=str(context), dockerfile=dockerfile, tag=tag, rm=True,
                                      forcerm=True, decode=True, labels=labels):
            if "error" in event:
                working()
                raise failed(str(event["error"]))
            for line in event.get("stream", "").splitlines():
                plain = log_text(line).strip()
                if not plain:
                    continue  # blank, or only a colour reset closing the line before
                match = _STEP.match(plain)
                if match:
                    # of N: our labels add steps; a long command cut between words, never inside one
                    step = f"step {match[1]} ({textwrap.shorten(match[3], 80, placeholder=' …')})"
                    answer_due = not match[3].upper().startswith("FROM ")
                elif answer_due:
                    answer_due = False
                    if plain != "---> Using cache":
                        working()
                tail.append(line)
                record("out", line)
            status, layer = event.get("status"), event.get("id")
            if status and "progress" not in event and pulled.get(layer or "") != status:  # FROM pulled
                working()
                pulled[layer or ""] = status
                record("out", f"{layer}: {status}" if layer else status)
    except docker.errors.APIError as exc:  # before any step: no Dockerfile, a parse error, a bad context
        working()
        raise failed(_short(exc)) from None
    image_id = local_image_id(client, tag)
    if image_id is None:
        working()
        raise WorkbenchError(f"building {dockerfile} produced no image ({' / '.join(log_text(t) for t in tail[-2:])})")
    if held is not None:
        progress(f"image {tag}: up to date (every step cached)")
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


def runs_cleanly(client: Any, image: str, argv: list[str], timeout: float = 120) -> bool:
    """Whether `argv` exits 0 in a throwaway container of `image` (no network; removed after). An image that
    cannot even start it (no such program in it) answers False."""
    import docker.errors
    import requests.exceptions

    try:
        container = client.containers.create(image, argv, network_disabled=True)
    except docker.errors.APIError as exc:
        raise WorkbenchError(f"cannot start a container of image {image}: {_short(exc)}") from None
    try:
        container.start()
        return int(container.wait(timeout=timeout).get("StatusCode", -1)) == 0
    except docker.errors.APIError:
        return False
    except requests.exceptions.ReadTimeout:
        raise WorkbenchError(f"`{' '.join(argv)}` did not end within {timeout:.0f}s in image {image}") from None
    finally:
        try:
            container.remove(force=True)
        except docker.errors.APIError:
            pass


def image_names(client: Any, image_id: str) -> list[str]:
    """The tags the engine gives `image_id` (none for an untagged one)."""
    try:
        return list(client.images.get(image_id).tags)
    except Exception:  # noqa: BLE001 - only a name to show
        return []


# sizes ------------------------------------------------------------------------------------------------
IMAGE_EVENT = "image"  # a run event: "<ref> <image id>: <N> bytes (<human>)", recorded when its image is resolved
_IMAGE_BYTES = re.compile(r": (\d+) bytes\b")


def image_size(client: Any, image_id: str) -> int:
    """What the image holds (all its layers, base layers included), as the engine reports it."""
    return int(client.api.inspect_image(image_id).get("Size") or 0)


def image_event(ref: str, image_id: str, size: int) -> str:
    return f"{ref} {image_id}: {size} bytes ({human_bytes(size)})"


def recorded_size(events: Iterable[dict[str, Any]], image_id: str | None) -> int | None:
    """The size recorded for `image_id` by an `image` event among `events`, or None."""
    if not image_id:
        return None
    for event in events:
        if event.get("kind") == IMAGE_EVENT and f" {image_id}: " in event.get("message", ""):
            match = _IMAGE_BYTES.search(event["message"])
            if match:
                return int(match[1])
    return None


def run_image_size(store: Any, run: dict[str, Any]) -> int | None:
    """The run's image size, from the database alone (works without an engine): its own `image` event, or
    that of any run that used the same image id (a rerun reuses its original's image without resolving it)."""
    image_id = run.get("image_id")
    if not image_id:
        return None
    size = recorded_size(run.get("events") or [], image_id)
    if size is None:
        event = store.last_event_containing(IMAGE_EVENT, f" {image_id}: ")
        size = recorded_size([event] if event else [], image_id)
    return size


def disk_usage(client: Any, instance: str, recorded: set[str]) -> tuple[int, int, int]:
    """(how many images Workbench built for this data dir, the bytes their layers take on disk counting each
    shared layer once and their base images' layers included, the bytes only they hold)."""
    ours = built_images(client, instance, recorded)
    if not ours:
        return 0, 0, 0
    chains = _chains(client)
    total = _freed(chains, ours, set())  # nothing remains: every layer they use, each once
    own = _freed(chains, ours, set(chains) - set(ours))
    return len(ours), total, own


# advice before a build ----------------------------------------------------------------------------------
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
_TORCH = re.compile(r"^(torch|torchvision|torchaudio)(\[[^\]]*\])?\s*([<>=!~;@ ].*)?$", re.I)
_PIP = re.compile(r"^(.*/)?pip[0-9.]*$")
_SEPARATORS = {"&&", "||", ";", "|", "&", "\n"}
_INDEX_OPTIONS = ("--index-url", "--extra-index-url", "-i")
_REQUIREMENT_OPTIONS = ("-r", "--requirement")


def _tokens(command: str) -> list[str]:
    import json
    import shlex

    if command.startswith("["):
        try:
            return [str(t) for t in json.loads(command)]
        except ValueError:
            pass
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        return list(lexer)
    except ValueError:  # unbalanced quotes: good enough for a guess
        return re.sub(r"(&&|\|\||[;|&])", r" \1 ", command).split()


def _requirements(context: Path, name: str, depth: int = 0) -> tuple[bool, bool]:
    """(the requirements file lists torch, it names the CPU index); found in the build context by its path, or
    failing that by its file name."""
    if depth > 3 or not name:
        return False, False
    root = context.resolve()
    candidates = [root / name.lstrip("/")]
    candidates += sorted(p for p in root.rglob(Path(name).name) if p.is_file())[:5]
    for path in candidates:
        try:
            if not path.is_file() or root not in path.resolve().parents:
                continue
            text = path.read_text(errors="replace")
        except OSError:
            continue
        torch = cpu = False
        for line in text.splitlines():
            line = line.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            cpu = cpu or "download.pytorch.org/whl/cpu" in line or bool(re.search(r"\+cpu\b", line))
            parts = line.split()
            if parts[0] in _REQUIREMENT_OPTIONS and len(parts) > 1:
                nested = _requirements(context, parts[1], depth + 1)
                torch, cpu = torch or nested[0], cpu or nested[1]
            elif _TORCH.match(line):
                torch = True
        return torch, cpu
    return False, False


def _pip_installs_torch(tokens: list[str], context: Path, env_cpu: bool) -> bool:
    """Whether a `pip install` in these tokens installs torch without the CPU-only index."""
    for i, token in enumerate(tokens):
        if not (_PIP.match(token) and i + 1 < len(tokens) and tokens[i + 1] == "install"):
            continue
        args: list[str] = []
        for arg in tokens[i + 2:]:
            if arg in _SEPARATORS:
                break
            args.append(arg)
        torch, cpu = False, env_cpu
        j = 0
        while j < len(args):
            arg = args[j]
            value = args[j + 1] if j + 1 < len(args) else ""
            option, eq, inline = arg.partition("=")
            if option in _INDEX_OPTIONS:
                cpu = cpu or "download.pytorch.org/whl/cpu" in (inline if eq else value)
                j += 1 if eq else 2
                continue
            if option in _REQUIREMENT_OPTIONS or (arg.startswith("-r") and len(arg) > 2):
                name = inline if eq else (arg[2:] if arg.startswith("-r") and len(arg) > 2 else value)
                listed, named_cpu = _requirements(context, name)
                torch, cpu = torch or listed, cpu or named_cpu
                j += 1 if (eq or (arg.startswith("-r") and len(arg) > 2)) else 2
                continue
            if _TORCH.match(arg):
                torch = True
                cpu = cpu or bool(re.search(r"\+cpu\b", arg))
            j += 1
        if torch and not cpu:
            return True
    return False


def torch_advice(context: Path, dockerfile: str) -> str | None:
    """Advice when the Dockerfile (read from the build context, never run) pip-installs torch, torchvision or
    torchaudio without the CPU-only index: the default wheels pull about 6 GB of CUDA libraries. None otherwise,
    or when the Dockerfile cannot be read (the build says why)."""
    try:
        text = (context / dockerfile).read_text(errors="replace")
    except OSError:
        return None
    env_cpu = False
    for instruction, rest in instructions(text):
        if instruction in ("ENV", "ARG") and "PIP_" in rest and "download.pytorch.org/whl/cpu" in rest:
            env_cpu = True
        if instruction != "RUN":
            continue
        tokens = _tokens(rest)
        inline_cpu = any(re.match(r"^PIP_(EXTRA_)?INDEX_URL=.*download\.pytorch\.org/whl/cpu", t) for t in tokens)
        if _pip_installs_torch(tokens, context, env_cpu or inline_cpu):
            return (f"{dockerfile} pip-installs torch without an index: the default wheels pull about 6 GB of "
                    "CUDA libraries into the image. If this machine has no GPU (or the runs do not use one), "
                    f"install the CPU-only build instead: `pip install torch --index-url {CPU_INDEX}`")
    return None
