"""The backends runs run on, declared: what each needs and does, asked by services instead of its name.

To add one: a module here whose class takes `(machine, host, settings)` and implements execution.base's
Executor (and the capability protocols it has), and its declaration below."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

# how a Slurm run's status reason starts while Slurm holds it (slurm_queue writes it, reconcile reads it)
PENDING_PREFIX = "Slurm: PENDING"


@dataclass(frozen=True)
class Backend:
    kind: str                           # the executor name a run records (`runs.executor`)
    classes: dict[str, str]             # "module:Class" for each machine kind it runs on ("local", "ssh", "slurm"),
                                        # imported on first use: a command that builds no backend loads none
    runs_in_image: bool                 # a container of an image (built or pulled first) on the machine's engine
    places_gpus_itself: bool            # its scheduler picks the GPUs: none are picked or reserved here
    pins_gpus_on: frozenset[str]        # the machine kinds where it confines a run to the GPUs reserved for it
    takes_setup_line: bool              # the experiment's `setup` shell line runs before its command
    held_reason: str | None = None      # how a run's status reason starts while its scheduler holds it

    @property
    def machine_kinds(self) -> frozenset[str]:
        return frozenset(self.classes)

    def executor_class(self, machine_kind: str) -> type | None:
        """The class that runs this backend on a machine of that kind (None: it does not run there)."""
        path = self.classes.get(machine_kind)
        if path is None:
            return None
        module, _, name = path.partition(":")
        return getattr(importlib.import_module(module), name)


_DOCKER = f"{__name__}.docker:DockerExecutor"

BACKENDS: dict[str, Backend] = {
    "docker": Backend("docker", {"local": _DOCKER, "ssh": _DOCKER}, runs_in_image=True,
                      places_gpus_itself=False, pins_gpus_on=frozenset({"local", "ssh"}), takes_setup_line=False),
    # on an SSH host CUDA_VISIBLE_DEVICES names the GPUs; here the process executor refuses GPU runs
    "process": Backend("process", {"local": f"{__name__}.process:ProcessExecutor",
                                   "ssh": f"{__name__}.ssh_process:RemoteProcessExecutor"}, runs_in_image=False,
                       places_gpus_itself=False, pins_gpus_on=frozenset({"ssh"}), takes_setup_line=False),
    "slurm": Backend("slurm", {"slurm": f"{__name__}.slurm:SlurmExecutor"}, runs_in_image=False, places_gpus_itself=True,
                     pins_gpus_on=frozenset(), takes_setup_line=True, held_reason=PENDING_PREFIX),
}
