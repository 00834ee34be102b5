"""The image a Docker run starts from: the experiment's image (from the engine, pulled if missing), or its
Dockerfile built from the run's snapshot under a tag keyed by its build inputs, with the build output kept
with the run; and for a notebook, that image with the notebook runner in it (`runner_image`)."""

from __future__ import annotations

import shlex
import tempfile
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.projects.spec import Experiment, ProjectSpec
from workbench.services.context import Services, warn
from workbench.textsafe import log_text


def build_key(wb: Services, dockerfile: str, snapshot_dir: Path, snapshot_hash: str) -> str:
    """The key of what the image is built from: the Dockerfile and the files its COPY/ADD lines take from
    the snapshot (less .dockerignore's), read from the snapshot's manifest (no file is hashed again). An edit
    to a file the Dockerfile does not copy keeps the key, so the image is reused."""
    from workbench.projects.dockerfile import build_inputs_key
    from workbench.projects.snapshot import snapshot_manifest

    def text(name: str) -> str | None:
        try:
            return (snapshot_dir / name).read_text(errors="replace")
        except OSError:
            return None

    entries = snapshot_manifest(wb.dirs.snapshots, snapshot_hash)
    return build_inputs_key(dockerfile, text(dockerfile), text(".dockerignore") or "", entries)


def _keep_output(wb: Services, run_id: str | None, name: str, lines: list[bytes]) -> None:
    """Build output kept in the run's folder as `name`."""
    if run_id is not None and lines:
        run_dir = wb.dirs.run_dir(run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_bytes(b"".join(lines))


def record_image(wb: Services, client: Any, run_id: str | None, ref: str, image_id: str) -> str:
    """The image's size kept with the run (an `image` event), so `runs show` says it without an engine."""
    from workbench.execution import images

    if run_id is not None:
        try:
            size = images.image_size(client, image_id)
        except Exception:  # noqa: BLE001 - only a record; the launch says what is wrong with the engine
            return image_id
        wb.store.add_event(run_id, images.IMAGE_EVENT, images.image_event(ref, image_id, size))
    return image_id


def image_for(wb: Services, spec: ProjectSpec, exp: Experiment, snapshot_dir: Path, snapshot_hash: str,
              run_id: str | None = None, *, machine: str = "local") -> str:
    """The image id for the run: `exp.image` from the engine (pulled if missing), or `exp.dockerfile` built
    from the snapshot as workbench/<project>:<build key> (`build_key`), labelled with this data dir's instance (so
    `gc` knows it built it). The build output is kept with the run: runs/<id>/build.log when it succeeds;
    when it fails, as the run's logs.txt (`workbench runs logs ID`), which is safe to write here because a
    run whose build failed never gets a container, so no ingestion ever appends to or cuts that file."""
    from workbench.execution import images
    from workbench.logformat import format_line, now_stamp

    client = wb.executors.docker_client_for(machine)

    def sized(ref: str, image_id: str) -> str:
        return record_image(wb, client, run_id, ref, image_id)

    if not exp.dockerfile:
        if machine == "local":
            return sized(exp.image or "", images.ensure_image(client, exp.image or "", wb.progress))
        # on a host: its own image, else this workstation's sent over, else a pull there
        return sized(exp.image or "", images.ensure_image_on(client, exp.image or "", wb.progress, machine,
                                                             wb.executors.local_docker_or_none()))
    tag = f"workbench/{spec.name.lower()}:{build_key(wb, exp.dockerfile, snapshot_dir, snapshot_hash)[:16]}"
    lines: list[bytes] = []
    if images.local_image_id(client, tag) is None:
        if machine != "local":
            wb.progress(f"building {exp.dockerfile} on {machine}'s engine (the build context is sent from here)")
        # Before the first build of this Dockerfile's content (once: not again when its image exists, nor
        # for a later build of the same Dockerfile, which an earlier run's warning already names).
        advice = images.torch_advice(snapshot_dir, exp.dockerfile)
        if advice:
            import hashlib
            try:
                digest = hashlib.sha256((snapshot_dir / exp.dockerfile).read_bytes()).hexdigest()[:12]
            except OSError:
                digest = snapshot_hash[:12]
            advice += f" (said once for this {exp.dockerfile}, content {digest})"
            if not wb.store.warning_recorded(advice):
                if run_id is not None:
                    warn(wb, run_id, advice)
                else:
                    wb.progress(f"warning: {advice}")

    def keep(name: str) -> None:
        _keep_output(wb, run_id, name, lines)

    try:
        image_id = images.build(
            client, snapshot_dir, exp.dockerfile, tag, wb.progress,
            log=lambda stream, text: lines.append(format_line(now_stamp(), stream, text.encode())),
            labels={images.INSTANCE_LABEL: wb.store.instance, "workbench.project": spec.name})
    except images.BuildFailed as exc:
        if run_id is None:
            raise
        keep("logs.txt")
        raise WorkbenchError(exc.message, hint=f"its build output is the run's log: `workbench runs logs {run_id}`"
                             ) from None
    if run_id is not None and lines:
        keep("build.log")
        wb.store.add_event(run_id, "build", f"built {tag}: {len(lines)} lines of build output in build.log")
    return sized(tag, image_id)


RUNNER_PACKAGES = ("nbclient", "ipykernel")
RUNNER_PROBE = "import nbclient, ipykernel"
RUNNER_BASE_LABEL = "workbench.runner-base"  # on a derived runner image: the id of the image it adds to


def runner_tag(purpose: str, base_id: str) -> str:
    """workbench/<purpose>-runner:<the base image id's first 16 hex>: a new base (a newer python:3.11-slim)
    is a new tag, so a layer added to an older one is never used for it."""
    return f"workbench/{purpose}-runner:{base_id.split(':')[-1][:16]}"


def runner_dockerfile(base_id: str, packages: tuple[str, ...] | list[str], user: str = "") -> str:
    """FROM the base, the packages pip-installed as root (the base's own user restored after)."""
    install = " ".join(shlex.quote(p) for p in packages)
    # PIP_BREAK_SYSTEM_PACKAGES: a distribution's python (PEP 668) refuses a plain install; older pips ignore it
    lines = [f"FROM {base_id}", *(["USER root"] if user else []),
             f"RUN PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir {install}",
             *([f"USER {user}"] if user else [])]
    return "\n".join(lines) + "\n"


def runner_image(wb: Services, base_id: str, *, machine: str = "local", run_id: str | None = None,
                 packages: tuple[str, ...] | list[str] = RUNNER_PACKAGES, probe: str = RUNNER_PROBE,
                 purpose: str = "notebook") -> str:
    """An image id on `machine`'s engine that has what `probe` imports: the one tagged `runner_tag` when it
    exists (one lookup); else the base itself when `python3 -c PROBE` succeeds in it (then tagged, so the next
    call is that lookup); else a thin layer over it (`runner_dockerfile`) built once through `images.build`,
    labelled with this data dir's instance (for `gc`) and its base, said once and, for a run, recorded with
    it (a `build` event; its output in <purpose>-runner-build.log). Two calls at once may both build: each ends with an
    image carrying the tag. A base where that layer cannot be built (no python3 or pip, no package index) is
    one error saying what to do."""
    from workbench.execution import images
    from workbench.logformat import format_line, now_stamp

    client = wb.executors.docker_client_for(machine)
    tag = runner_tag(purpose, base_id)
    found = images.local_image_id(client, tag)
    if found:
        return found if found == base_id else record_image(wb, client, run_id, tag, found)
    if images.runs_cleanly(client, base_id, ["python3", "-c", probe]):
        repository, version = tag.rsplit(":", 1)
        client.api.tag(base_id, repository, version, force=True)
        return base_id
    names = [t for t in images.image_names(client, base_id) if not t.startswith("workbench/")]
    base_name = names[0] if names else base_id.split(":")[-1][:12]
    wanted = ", ".join(packages)
    wb.progress(f"{base_name} lacks the {purpose} runner ({wanted}): adding it in a thin layer, once: {tag}")
    user = str((client.api.inspect_image(base_id).get("Config") or {}).get("User") or "")
    lines: list[bytes] = []
    said: list[str] = []

    def log(stream: str, text: str) -> None:
        lines.append(format_line(now_stamp(), stream, text.encode()))
        said.append(text)

    with tempfile.TemporaryDirectory(prefix="workbench-runner-") as context:
        dockerfile = f"{purpose}-runner.Dockerfile"
        (Path(context) / dockerfile).write_text(runner_dockerfile(base_id, packages, user))
        try:
            image_id = images.build(
                client, Path(context), dockerfile, tag, wb.progress,
                log=log, labels={images.INSTANCE_LABEL: wb.store.instance, RUNNER_BASE_LABEL: base_id})
        except images.BuildFailed as exc:
            _keep_output(wb, run_id, "logs.txt", lines)  # as image_for: a run that got no container
            where = f"; its output: `workbench runs logs {run_id}`" if run_id is not None else ""
            raise WorkbenchError(
                f"{base_name} lacks the {purpose} runner ({wanted}) and it could not be added to it "
                f"({_install_failure(said, exc.message)})", hint=f"add {' and '.join(packages)} to the image{where}"
            ) from None
    _keep_output(wb, run_id, f"{purpose}-runner-build.log", lines)
    if run_id is not None:
        wb.store.add_event(run_id, "build", f"added the {purpose} runner ({wanted}) to {base_name} in a thin "
                                            f"layer: {tag}")
    return record_image(wb, client, run_id, tag, image_id)


def _install_failure(output: list[str], build_error: str) -> str:
    """What the failed install said last (`/bin/sh: python3: not found`, pip's `ERROR: No matching
    distribution…`), else the build's own error; the builder's bookkeeping and pip's notices skipped."""
    noise = ("Removing intermediate container", "--->", "[notice]", "The command ", "WARNING: Running pip as")
    for line in reversed(output):
        plain = log_text(line).strip()
        if plain and not plain.startswith(noise):
            return plain[:300]
    return build_error
