"""The model registry's use cases: register a run's artifact as version N of a model (with its lineage,
gated on the run's checks), resolve NAME[:VERSION|@ALIAS], list, show, and move aliases."""

from __future__ import annotations

import getpass
import socket
from typing import Any

from workbench.errors import NotFound, WorkbenchError
from workbench.execution.base import inside_out
from workbench.registry.models import ModelRef, check_name, parse_ref, store_blob, verified_blob
from workbench.services.context import Services


def who() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # noqa: BLE001 - no user name in this environment
        return f"?@{socket.gethostname()}"


def register(wb: Services, run_ref: str, artifact: str, name: str, force: bool = False) -> dict[str, Any]:
    check_name(name)
    run = wb.store.get_run(run_ref)
    label = f"run {run['id']}"
    if run["status"] != "succeeded" and not force:
        raise WorkbenchError(f"{label} {run['status']}: only a run that succeeded is registered",
                             hint="pass --force to register it anyway (recorded as forced)")
    if run.get("verdict") == "fail" and not force:
        raise WorkbenchError(f"{label} failed its checks: not registered",
                             hint=f"see `workbench runs show {run['id']}`; --force registers it anyway (recorded)")
    wanted = artifact.strip().strip("/")
    listed = {a["path"]: a for a in wb.store.artifacts(run["seq"]) if not a.get("link")}
    if wanted not in listed or not inside_out(wanted):
        some = ", ".join(sorted(listed)[:5]) or "none"
        raise WorkbenchError(f"{label} has no artifact {artifact!r} (it has: {some})",
                             hint=f"see `workbench runs show {run['id']}`")
    recorded = listed[wanted]
    source = wb.dirs.run_dir(run["id"]) / "out" / wanted
    if not source.is_file() and wb.executors.is_remote(run.get("machine") or "local"):
        wb.progress(f"fetching {wanted} from {run['machine']}")
        wb.pull(run["id"], [wanted])
    if not source.is_file():
        raise WorkbenchError(f"the file of artifact {wanted!r} of {label} is gone ({source})",
                             hint="was it removed with `workbench gc` or by hand?")
    sha, size = store_blob(wb.dirs.models, source, recorded["sha256"])
    lineage = {"run": run["id"], "project": run["project"], "project_path": run["project_path"],
               "experiment": run["experiment"], "params": run["params"], "metrics": run.get("summary") or {},
               "verdict": run.get("verdict"), "snapshot": run.get("snapshot"), "image": run.get("image"),
               "image_id": run.get("image_id"), "machine": run.get("machine"), "git_commit": run.get("git_commit"),
               "status": run["status"]}
    version = wb.store.add_model_version(name, sha256=sha, size=size, filename=wanted.rsplit("/", 1)[-1],
                                         run_id=run["id"], artifact=wanted, lineage=lineage, forced=force)
    return version


def resolve(wb: Services, text: str | ModelRef) -> dict[str, Any]:
    """The version a reference names: NAME (the latest), NAME:VERSION, NAME@ALIAS."""
    ref = parse_ref(text) if isinstance(text, str) else text
    if not wb.store.latest_model_version(ref.name):
        known = ", ".join(m["name"] for m in wb.store.models()[:8]) or "none registered yet"
        raise NotFound(f"no model {ref.name!r} (models: {known})", hint="see `workbench models list`")
    if ref.alias:
        aliases = wb.store.model_aliases(ref.name)
        if ref.alias not in aliases:
            raise NotFound(f"model {ref.name!r} has no alias {ref.alias!r} (aliases: "
                           f"{', '.join(sorted(aliases)) or 'none'})",
                           hint=f"set one: `workbench models alias {ref.name} VERSION {ref.alias}`")
        version = wb.store.model_version(ref.name, aliases[ref.alias])
    elif ref.version is not None:
        version = wb.store.model_version(ref.name, ref.version)
        if version is None:
            latest = wb.store.latest_model_version(ref.name)
            raise NotFound(f"model {ref.name!r} has no version {ref.version} (versions 1–{latest['version']})")  # type: ignore[index]
    else:
        version = wb.store.latest_model_version(ref.name)
    assert version is not None
    return version


def model_file(wb: Services, version: dict[str, Any]) -> Any:
    """The version's stored file, its sha256 checked."""
    return verified_blob(wb.dirs.models, version["sha256"], f"{version['name']}:{version['version']}")


def models(wb: Services) -> list[dict[str, Any]]:
    out = []
    for model in wb.store.models():
        out.append({**model, "aliases": wb.store.model_aliases(model["name"])})
    return out


def show(wb: Services, text: str) -> dict[str, Any]:
    """A model (NAME: every version, aliases, alias history) or one version (NAME:V, NAME@ALIAS)."""
    ref = parse_ref(text)
    if ref.version is None and ref.alias is None:
        resolve(wb, ref)  # a clear error for an unknown name
        aliases = wb.store.model_aliases(ref.name)
        versions = wb.store.model_versions(ref.name)
        for v in versions:
            v["aliases"] = sorted(a for a, n in aliases.items() if n == v["version"])
        return {"name": ref.name, "versions": versions, "aliases": aliases,
                "alias_history": wb.store.model_alias_history(ref.name)}
    version = resolve(wb, ref)
    version["aliases"] = sorted(a for a, n in wb.store.model_aliases(ref.name).items() if n == version["version"])
    return version


def set_alias(wb: Services, name: str, version: str | int, alias: str) -> dict[str, Any]:
    check_name(alias, "alias")
    if not str(version).isdigit():
        raise WorkbenchError(f"version {version!r} is not a number", hint=f"see `workbench models show {name}`")
    target = resolve(wb, ModelRef(check_name(name), version=int(version)))
    previous = wb.store.set_model_alias(name, alias, target["version"], who())
    return {"name": name, "alias": alias, "version": target["version"], "previous": previous}
