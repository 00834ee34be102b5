"""`workbench gc`: snapshots no run references, run dirs no run owns, containers of ours no active run owns,
and the images Workbench built that no run needs any more."""

from __future__ import annotations

import shutil
from typing import Any

from workbench.errors import EngineUnavailable, WorkbenchError
from workbench.execution.scripts import q
from workbench.failures import is_engine_failure
from workbench.projects.snapshot import remove_unreferenced, snapshot_lock
from workbench.services.context import Services, first_line
from workbench.services.images import build_key
from workbench.services.reconcile import remove_orphan_containers


def gc(wb: Services) -> dict[str, Any]:
    """Reclaims snapshots no run references, run dirs no run record owns, containers of ours that no
    active run owns (left by an interrupted launch), and the images built for Dockerfile experiments that
    no run needs any more (see `remove_unneeded_images`). Without an engine, containers and images are
    left as they are, with a note in `notes`; the files are reclaimed all the same."""
    wb.store.downsample_telemetry()
    notes: list[str] = []
    with snapshot_lock(wb.dirs.snapshots, exclusive=True):  # no launch is between snapshot and record
        keep = wb.store.referenced_snapshots()
        snapshots, freed = remove_unreferenced(wb.dirs.snapshots, keep)
        hosts = gc_hosts(wb, keep, notes)
    orphans = 0
    # Listed before the records are read: a launch records its run before it makes the run's dir, so
    # a dir listed here whose run is being launched has its record seen below.
    listed = [entry for entry in wb.dirs.runs.iterdir() if entry.is_dir()] if wb.dirs.runs.is_dir() else []
    known = wb.store.all_run_ids()
    for entry in listed:
        if entry.name not in known:
            freed += sum(f.lstat().st_size for f in entry.rglob("*") if f.is_file() and not f.is_symlink())
            shutil.rmtree(entry, ignore_errors=True)
            orphans += 1
    from workbench.services.ci_runs import exports_dir, remove_stale_exports
    remove_stale_exports(exports_dir(wb))  # commits' trees written out by CI launches that were killed
    containers = images_removed = 0
    try:
        containers = remove_orphan_containers(wb)
        images_removed, image_bytes = remove_unneeded_images(wb)
        freed += image_bytes
    except Exception as exc:  # noqa: BLE001 - no engine (or one that stopped answering) never fails gc
        if not (isinstance(exc, EngineUnavailable) or is_engine_failure(exc)):
            raise
        why = (exc.message if isinstance(exc, EngineUnavailable)
               else f"the Docker engine stopped answering ({first_line(exc)})")
        notes.append(f"{why}: containers and images were left as they are (and not measured)")
    images_left = image_disk = None
    if not notes:  # what Workbench's images still take, once cleaned (None: the engine did not answer)
        from workbench.execution import images
        try:
            images_left, image_disk, _ = images.disk_usage(wb.executors.docker_client(), wb.store.instance,
                                                           wb.store.recorded_image_ids())
        except Exception as exc:  # noqa: BLE001 - as above
            if not (isinstance(exc, EngineUnavailable) or is_engine_failure(exc)):
                raise
            notes.append(f"the Docker engine stopped answering ({first_line(exc)}): images not measured")
    return {"snapshots_removed": snapshots, "run_dirs_removed": orphans, "containers_removed": containers,
            "images_removed": images_removed, "bytes_freed": freed, "notes": notes,
            "images_left": images_left, "image_disk_bytes": image_disk, "hosts": hosts}


def gc_hosts(wb: Services, keep: set[str], notes: list[str]) -> dict[str, dict[str, int]]:
    """On every SSH machine: the snapshots no run references, the run dirs no run record owns, and our
    containers no active run owns. A host that does not answer is left as it is, with a note. The host's
    Workbench dir belongs to this data dir: give each workstation its own (`machines add --dir`)."""
    from workbench.execution.remote_snapshot import remove_unreferenced_remote

    done: dict[str, dict[str, int]] = {}
    for machine in wb.list_machines():
        name = machine["name"]
        if machine["kind"] not in ("ssh", "slurm"):
            continue
        try:
            host = wb.executors.host(name)
            trees, objects = remove_unreferenced_remote(host.connection, host.root, keep)
            listing = host.sh(f"ls -1 {q(host.root + '/runs')} 2>/dev/null; true", what="listing run dirs")
            known = wb.store.all_run_ids()  # read after the listing, as for the local run dirs
            stale = [d for d in listing.decode(errors="replace").split() if d not in known]
            for run_dir in stale:
                host.remove_tree(f"{host.root}/runs/{run_dir}")
            containers = 0
            try:
                if machine["kind"] == "ssh":  # a Slurm login node's engine (if any) is not where runs ran
                    containers = remove_orphan_containers(wb, name)
            except (EngineUnavailable, WorkbenchError):
                pass  # no engine there: process runs only
            done[name] = {"snapshots_removed": trees, "objects_removed": objects, "run_dirs_removed": len(stale),
                          "containers_removed": containers}
        except WorkbenchError as exc:
            wb.executors.forget_machine(name)
            notes.append(f"{name}: {exc.message}; its files there were left as they are")
    return done


def _build_key_of(wb: Services, run: dict[str, Any], known: dict[tuple[str, str], str]) -> str:
    """The tag an active run's image has or will have (its build inputs' key), or "" (no Dockerfile, or its
    snapshot not readable). `known`: the keys already taken in this pass, by (Dockerfile, snapshot): the
    trials of a queued sweep share one snapshot, and a key reads the snapshot's whole manifest."""
    dockerfile = (run.get("spec") or {}).get("dockerfile")
    if not dockerfile or not run.get("snapshot"):
        return ""
    if (dockerfile, run["snapshot"]) not in known:
        try:
            key = build_key(wb, dockerfile, wb.dirs.snapshots / run["snapshot"], run["snapshot"])[:16]
        except Exception:  # noqa: BLE001 - its snapshot went or never was whole: nothing of it to keep
            key = ""
        known[(dockerfile, run["snapshot"])] = key
    return known[(dockerfile, run["snapshot"])]


def remove_unneeded_images(wb: Services) -> tuple[int, int]:
    """(images removed, bytes freed). Candidates are the images Workbench built for this data dir (tagged
    workbench/<project>:<build inputs key> and labelled with its instance, or recorded by one of its runs);
    an image another data dir, the user or anything else built is never touched. Kept: the image of every
    active run, of every run an active run reruns, of one still being built (its tag is the build key of an
    active run's Dockerfile and snapshot), and of the newest run of each project/experiment that got one,
    so the latest build stays ready. Older runs' images go: `runs rerun` of such a run rebuilds its image from the run's snapshot
    (which gc keeps while any run references it). No deployments are recorded in this version; when the
    registry records them, their images join the kept set. An image a container uses stays."""
    from workbench.execution import images

    client = wb.executors.docker_client()
    recorded = wb.store.recorded_image_ids()
    # Listed before the runs are read: a launch records its snapshot before it builds, and its image id
    # before it starts, so an image listed here that a launch needs is seen as needed below.
    candidates = images.built_images(client, wb.store.instance, recorded)
    if not candidates:
        return 0, 0
    keep: set[str] = set()
    building: set[str] = set()
    newest: dict[tuple[str, str], str] = {}
    active = wb.store.active_runs()
    reruns_of = {run["rerun_of"] for run in active if run.get("rerun_of")}
    keys: dict[tuple[str, str], str] = {}
    for run in active:
        keep.add(run.get("image_id") or "")
        building.add(_build_key_of(wb, run, keys))
    for run_id, project, experiment, image_id in wb.store.run_images():
        newest[(project, experiment)] = image_id
        if run_id in reruns_of:
            keep.add(image_id)
    keep.update(newest.values())
    doomed = {image_id: tags for image_id, tags in candidates.items()
              if image_id not in keep and not any(tag.rsplit(":", 1)[1] in building for tag in tags)}
    return images.remove_images(client, doomed)
