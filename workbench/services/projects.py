"""Registered projects: add (validated, one name per folder), registered by a launch, remove, list with their
experiments."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from workbench.errors import NotFound, WorkbenchError
from workbench.projects.spec import ProjectSpec, load_spec
from workbench.store import Store


def add_project(store: Store, path: str) -> ProjectSpec:
    spec = load_spec(path)
    for existing in store.projects():
        if existing["name"] == spec.name and existing["path"] != str(spec.root):
            raise WorkbenchError(f"a project named {spec.name!r} is already registered at {existing['path']}",
                                 hint="rename one of them in [project] name, or remove the other first")
    store.add_project(spec.name, str(spec.root))
    return spec


def register_launched(store: Store, spec: ProjectSpec) -> None:
    """A run or sweep was just recorded from this folder: the Projects screen and `projects list` show it
    from now on, as if added. A folder already registered, or another folder holding the name, is left as
    it is (the launch is not refused for it)."""
    store.register_project(spec.name, str(spec.root))


def remove_project(store: Store, name_or_path: str) -> None:
    path = str(Path(name_or_path).expanduser().resolve()) if os.sep in name_or_path else name_or_path
    if not (store.remove_project(name_or_path) or store.remove_project(path)):
        raise NotFound(f"no registered project {name_or_path!r}", hint="see `workbench projects list`")


def projects(store: Store) -> list[dict[str, Any]]:
    """Each registered project with its experiments (or why its spec does not load) and what its runs cost
    so far (`cost`: null when none ran on a machine with a rate)."""
    import time

    out = []
    costs = store.costs_by_project(time.time())
    for project in store.projects():
        project = {**project, "cost": costs.get(project["name"])}
        try:
            spec = load_spec(project["path"])
            project = {**project, "experiments": sorted(spec.experiments), "error": None}
        except WorkbenchError as exc:
            project = {**project, "experiments": [], "error": str(exc)}
        out.append(project)
    return out
