"""A run's experiment as the history keeps it, and back; secrets the history redacted, found again."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.projects.checks import Check
from workbench.projects.spec import Experiment, Mount, load_spec
from workbench.redaction import REDACTED


def spec_record(exp: Experiment) -> dict[str, Any]:
    return asdict(exp)


def experiment_from_record(recorded: dict[str, Any]) -> Experiment:
    exp = Experiment(**recorded)
    exp.mounts = [Mount(**m) for m in recorded.get("mounts", [])]
    exp.checks = [Check(**c) for c in recorded.get("checks", [])]
    return exp


def unredacted_env(exp: Experiment, project: Path) -> dict[str, str]:
    """The history keeps secrets redacted: a rerun takes their values from the project's workbench.toml
    as it is now, or else from this environment, and says which one is missing."""
    env = dict(exp.env)
    current: dict[str, str] = {}
    try:
        current = load_spec(project).experiments.get(exp.name, Experiment(name="", command=[])).env
    except WorkbenchError:
        pass
    for name, value in exp.env.items():
        if REDACTED not in value:
            continue
        if name in current:
            env[name] = current[name]
        elif name in os.environ:
            env[name] = os.environ[name]
        else:
            raise WorkbenchError(f"the history keeps {name} redacted and neither {project}/workbench.toml nor "
                                 "this environment sets it", hint=f"export {name}=... and rerun")
    return env
