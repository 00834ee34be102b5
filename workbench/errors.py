"""The one exception type a user ever sees: a single line saying what, where and how to fix."""


class WorkbenchError(Exception):
    """A user-caused or environmental error. str(err) is the whole message, one line."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message} ({hint})")


class SpecError(WorkbenchError):
    """workbench.toml is missing, malformed or invalid."""


class NotFound(WorkbenchError):
    """A run, project or machine the user named does not exist."""


class EngineUnavailable(WorkbenchError):
    """No Docker engine answers where one was required."""


class PortInUse(WorkbenchError):
    """The port a deployment's endpoint asks for is held on the machine."""


class NoGpuRuntime(WorkbenchError):
    """The machine's Docker engine cannot give a container GPUs (no NVIDIA Container Toolkit there)."""
