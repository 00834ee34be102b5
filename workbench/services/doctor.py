"""`workbench doctor`: is everything a run needs in place? Each check says what to do when it is not."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from workbench.errors import EngineUnavailable, WorkbenchError
from workbench.formatting import human_bytes
from workbench.services.context import Services

MIN_FREE_BYTES = 5 << 30
IMAGES_WARN_BYTES = 50 << 30  # Workbench's own images above this: `workbench gc` is worth running


def _check(name: str, ok: bool | None, detail: str, fix: str | None = None) -> dict[str, Any]:
    return {"check": name, "status": "ok" if ok else ("warn" if ok is None else "fail"), "detail": detail,
            "fix": None if ok else fix}


def run_checks(wb: Services) -> list[dict[str, Any]]:
    checks = []
    data = wb.dirs.data
    try:
        with tempfile.NamedTemporaryFile(dir=data):
            pass
        checks.append(_check("data dir", True, f"{data} is writable"))
    except OSError as exc:
        checks.append(_check("data dir", False, f"{data}: {exc.strerror}",
                             "set WORKBENCH_HOME to a writable folder, or fix the folder's permissions"))
    free = shutil.disk_usage(data).free
    checks.append(_check("disk space", free >= MIN_FREE_BYTES or None, f"{free / 2**30:.1f} GiB free under {data}",
                         "free space, or run `workbench gc` and `workbench runs rm` to reclaim it"))
    try:
        count = wb.store.count_runs()
        checks.append(_check("database", True, f"{wb.dirs.db_path} ({count} runs)"))
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks.append(_check("database", False, str(exc), "move the file aside; Workbench creates a new one"))

    engine_ok = False
    try:
        client = wb.executors.docker_client()
        version = client.version()
        engine_ok = True
        checks.append(_check("docker engine", True,
                             f"Docker {version.get('Version')} (API {version.get('ApiVersion')}) at {client.api.base_url}"))
    except EngineUnavailable as exc:
        checks.append(_check("docker engine", False, exc.message,
                             "install and start Docker (or set DOCKER_HOST); until then runs use --executor process"))
    if engine_ok:
        runtimes = client.info().get("Runtimes", {})
        has_nvidia = "nvidia" in runtimes or any("nvidia" in str(v) for v in runtimes.values())
        checks.append(_check("gpu runtime", has_nvidia or None,
                             "NVIDIA container runtime present" if has_nvidia else
                             f"no NVIDIA runtime (runtimes: {', '.join(runtimes) or 'none'})",
                             "install the NVIDIA Container Toolkit to run experiments with gpus > 0"))
    checks.append(_images_check(wb, client if engine_ok else None))
    inventory = wb.gpu_probe()
    if inventory.gpus:
        names = ", ".join(sorted({g.name for g in inventory.gpus}))
        checks.append(_check("nvml", True, f"{len(inventory.gpus)} GPU(s): {names}; driver {inventory.driver}"))
    else:
        checks.append(_check("nvml", None, f"no GPUs visible ({inventory.error or 'none found'})",
                             "CPU-only runs work; for GPUs install the NVIDIA driver"))
    checks.append(_check("process executor", True, f"python {os.sys.version.split()[0]} for detached runs"))
    return checks


def _images_check(wb: Services, client: Any) -> dict[str, Any]:
    """What the images Workbench built for this data dir take on disk; never a failure (no engine: said so)."""
    from workbench.execution import images
    from workbench.failures import is_engine_failure

    name = "workbench images"
    if client is None:
        return _check(name, None, "not measured: no Docker engine answers",
                      "start the Docker engine; `workbench doctor` then says what Workbench's images take")
    try:
        count, total, own = images.disk_usage(client, wb.store.instance, wb.store.recorded_image_ids())
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        why = "the Docker engine stopped answering" if is_engine_failure(exc) else "the engine refused"
        return _check(name, None, f"not measured: {why} ({(str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]})",
                      "check the Docker engine (`docker info`); `workbench doctor` then says what Workbench's images take")
    detail = (f"{count} image{'s' if count != 1 else ''}, {human_bytes(total)} on disk"
              + (f" ({human_bytes(own)} of it in no other image)" if count else ""))
    if total > IMAGES_WARN_BYTES:
        return _check(name, None, detail + f": over {IMAGES_WARN_BYTES >> 30} GiB",
                      "`workbench gc` removes the images no run needs (each project keeps its newest)")
    return _check(name, True, detail)


def host_checks(wb: Services, machine: str) -> list[dict[str, Any]]:
    """`workbench doctor NAME`: can runs run on that SSH host? SSH (host key, auth), its Docker engine and GPU
    runtime, its GPUs, the Workbench dir there and the disk under it."""
    from workbench.execution.hosts import SshHost, free_bytes
    from workbench.machines.remote import remote_gpu_inventory

    resolved = wb.executors.resolve(machine)
    checks = []
    try:
        connection = wb.executors.connection(machine)
        connection.transport()
        checks.append(_check("ssh", True, f"{connection.target.address}: host key known, authenticated"))
    except WorkbenchError as exc:
        fix = getattr(exc, "hint", None) or f"check that {machine} is up and reachable"
        return [_check("ssh", False, exc.message, fix)]
    other_dir = f"set another dir: `workbench machines add {machine} --ssh ... --dir PATH`"
    host = None
    try:
        host = wb.executors.host(machine)
        assert isinstance(host, SshHost)
        runs = f"{host.root}/runs"
        host.make_dirs(runs)
        why = host.why_unwritable(runs)  # an existing dir is not created again: try writing in it
        checks.append(_check("workbench dir", why is None, f"{host.root} is writable" if why is None else
                             f"{machine}: cannot write in {why}",
                             f"free space on {machine}, or run `workbench gc`" if why and "No space left" in why
                             else other_dir))
    except WorkbenchError as exc:
        checks.append(_check("workbench dir", False, exc.message,
                             exc.hint if "no space left" in exc.message else other_dir))
    try:
        bytes_free = free_bytes(host.connection, host.root) if host else None
        if bytes_free is not None:
            checks.append(_check("disk space", (bytes_free >= MIN_FREE_BYTES or None) if bytes_free >= 1 << 20
                                 else False, f"{bytes_free / 2**30:.1f} GiB free under {host.root}",
                                 f"free space on {machine}, or run `workbench gc`"))
    except WorkbenchError:
        pass  # the Workbench dir's check said what is wrong (host.root could not be learnt)
    if resolved.kind == "slurm":
        return checks + slurm_checks(wb, machine, connection)
    engine_ok = False
    try:
        client = wb.executors.docker_client_for(machine)
        version = client.version()
        runtimes = client.info().get("Runtimes", {})
        engine_ok = True
        checks.append(_check("docker engine", True, f"Docker {version.get('Version')} "
                                                    f"(API {version.get('ApiVersion')}) on {machine}"))
    except (EngineUnavailable, WorkbenchError) as exc:
        checks.append(_check("docker engine", None, exc.message,
                             f"install Docker on {machine}; until then runs there use the process executor"))
    except Exception as exc:  # noqa: BLE001 - an engine that answers badly (docker-py, requests errors)
        checks.append(_check("docker engine", False, f"the Docker engine on {machine} did not answer: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                             f"check `docker info` on {machine}"))
    if engine_ok:
        has_nvidia = "nvidia" in runtimes or any("nvidia" in str(v) for v in runtimes.values())
        checks.append(_check("gpu runtime", has_nvidia or None,
                             "NVIDIA container runtime present" if has_nvidia else
                             f"no NVIDIA runtime registered (runtimes: {', '.join(runtimes) or 'none'}); a GPU "
                             "request is tried and reported at launch",
                             f"install the NVIDIA Container Toolkit on {machine} to run experiments with gpus > 0"))
    try:
        inventory = remote_gpu_inventory(connection)
    except WorkbenchError as exc:  # the connection dropped meanwhile
        checks.append(_check("gpus", False, exc.message, f"check that {machine} is up and reachable"))
        return checks
    if inventory.gpus:
        names = ", ".join(sorted({g.name for g in inventory.gpus}))
        checks.append(_check("gpus", True, f"{len(inventory.gpus)} GPU(s): {names}; driver {inventory.driver}"))
    else:
        checks.append(_check("gpus", None, inventory.error or "no GPUs", "CPU-only runs work there"))
    return checks


def slurm_checks(wb: Services, machine: str, connection: Any) -> list[dict[str, Any]]:
    """A Slurm cluster's login node: sbatch and squeue answer, the partition jobs go to is up (with its nodes
    and GPUs as sinfo says), and whether the cluster keeps accounting (sacct) for jobs that end unseen."""
    record = wb.store.get_machine(machine) or {}
    partition = ((record.get("config") or {}).get("slurm") or {}).get("partition")
    checks = []
    for tool in ("sbatch", "squeue", "scancel"):
        code, out, _ = connection.run(["sh", "-c", f"command -v {tool}"])
        checks.append(_check(tool, code == 0, out.decode(errors="replace").strip() or f"{tool} is not on PATH",
                             f"load Slurm's client tools in the login shell of {machine}"))
    argv = ["sinfo", "--noheader", "--format=%P|%a|%D|%t|%G"] + ([f"--partition={partition}"] if partition else [])
    code, out, err = connection.run(argv)
    rows = [line.split("|") for line in out.decode(errors="replace").splitlines() if line.count("|") == 4]
    if code != 0 or not rows:
        message = (err or out).decode(errors="replace").strip().splitlines()
        checks.append(_check("partition", False, message[-1] if message else f"no partition {partition!r}",
                             "check --partition (`sinfo` lists them)"))
        return checks
    up = [r for r in rows if r[1] == "up"]
    detail = "; ".join(f"{r[0]} {r[1]}: {r[2]} node(s) {r[3]}, gres {r[4]}" for r in rows[:4])
    checks.append(_check("partition", bool(up), detail, "the partition is down: ask the cluster's admins"))
    try:
        code, out, err = connection.run(["sacct", "--noheader", "--allocations", "--starttime=now-1minutes",
                                         "--format=JobID"], timeout=20)
    except WorkbenchError as exc:  # slurmdbd not answering in time
        code, out, err = 1, b"", exc.message.encode()
    said = (err or out).decode(errors="replace").strip().splitlines()
    checks.append(_check("accounting", code == 0 or None,
                         "sacct answers: a job that ends while nothing of Workbench looks, without writing its "
                         "exit record, ends as Slurm recorded it" if code == 0 else
                         f"no accounting ({said[-1] if said else 'sacct failed'}): such a job is recorded lost",
                         "optional: the cluster's admins run slurmdbd"))
    return checks

