"""What every remote test shares beyond `remote_env` (the remote host env, a session fixture of tests/conftest.py,
also used by the backend conformance suite): its detached followers and dispatchers stopped after each test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _stop_followers_of_this_test(home):
    """A remote run's detached follower keeps retrying while its host is away (by design: the run lives on),
    and a dispatcher waits as long as runs are queued;
    once a test is over and its host torn down, its followers are stopped, by pid."""
    yield
    import signal

    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (b"_follow" in argv or b"_dispatch" in argv) and f"WORKBENCH_HOME={home}".encode() in environ:
            try:
                os.kill(int(entry.name), signal.SIGTERM)
            except ProcessLookupError:
                pass
