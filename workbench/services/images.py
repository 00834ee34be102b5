"""The image a Docker run starts from: the experiment's image (from the engine, pulled if missing), or its
Dockerfile built from the run's snapshot under a tag keyed by its build inputs, with the build output kept
with the run."""

from __future__ import annotations

from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.projects.spec import Experiment, ProjectSpec
from workbench.services.context import Services, warn


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
        """Its size kept with the run (an `image` event), so `runs show` says it without an engine."""
        if run_id is not None:
            try:
                size = images.image_size(client, image_id)
            except Exception:  # noqa: BLE001 - only a record; the launch says what is wrong with the engine
                return image_id
            wb.store.add_event(run_id, images.IMAGE_EVENT, images.image_event(ref, image_id, size))
        return image_id

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
        if run_id is not None and lines:
            run_dir = wb.dirs.run_dir(run_id)
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / name).write_bytes(b"".join(lines))

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
