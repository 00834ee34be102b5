"""The backends runs run on, declared: what each needs and does, asked by services instead of its name.

To add one: a module here whose class takes `(machine, host, settings)` and implements execution.base's
Executor (and the capability protocols it has), and its declaration below."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.execution.backends.docker import DockerExecutor
from workbench.execution.backends.process import ProcessExecutor
from workbench.execution.backends.slurm import SlurmExecutor
from workbench.execution.backends.slurm_queue import PENDING_PREFIX
from workbench.execution.backends.ssh_process import RemoteProcessExecutor


@dataclass(frozen=True)
class Backend:
    kind: str                           # the executor name a run records (`runs.executor`)
    classes: dict[str, type]            # the class for each machine kind it runs on ("local", "ssh", "slurm")
    runs_in_image: bool                 # a container of an image (built or pulled first) on the machine's engine
    places_gpus_itself: bool            # its scheduler picks the GPUs: none are picked or reserved here
    pins_gpus_on: frozenset[str]        # the machine kinds where it confines a run to the GPUs reserved for it
    takes_setup_line: bool              # the experiment's `setup` shell line runs before its command
    held_reason: str | None = None      # how a run's status reason starts while its scheduler holds it

    @property
    def machine_kinds(self) -> frozenset[str]:
        return frozenset(self.classes)


BACKENDS: dict[str, Backend] = {
    "docker": Backend("docker", {"local": DockerExecutor, "ssh": DockerExecutor}, runs_in_image=True,
                      places_gpus_itself=False, pins_gpus_on=frozenset({"local", "ssh"}), takes_setup_line=False),
    # on an SSH host CUDA_VISIBLE_DEVICES names the GPUs; here the process executor refuses GPU runs
    "process": Backend("process", {"local": ProcessExecutor, "ssh": RemoteProcessExecutor}, runs_in_image=False,
                       places_gpus_itself=False, pins_gpus_on=frozenset({"ssh"}), takes_setup_line=False),
    "slurm": Backend("slurm", {"slurm": SlurmExecutor}, runs_in_image=False, places_gpus_itself=True,
                     pins_gpus_on=frozenset(), takes_setup_line=True, held_reason=PENDING_PREFIX),
}
