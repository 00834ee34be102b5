"""Issue 22 item 8: a Dockerfile build's output under `run --wait` keeps the engine's colours on a terminal
and loses them in a pipe (never `\\x1b[91m` as text), and a failed build names its step shortened between
words with `…`; against the real engine."""

from __future__ import annotations

import re
import secrets

import pytest

from helpers import assert_one_line_error

pytestmark = pytest.mark.docker

LONG = ("echo preparing the environment for the experiment {token} with a rather long command line "
        "&& exit 3 && echo unreachable")
DOCKERFILE = 'FROM busybox:latest\nRUN echo "WARNING: running as root {token}" >&2\nRUN {long}\n'


def _project(make_project, docker_client, request):
    token = secrets.token_hex(4)  # nothing cached: the steps run and print
    name = f"colours-{token}"
    spec = f'[project]\nname = "{name}"\n[experiments.t]\ndockerfile = "Dockerfile"\ncommand = ["true"]\n'
    root = make_project(spec, {"Dockerfile": DOCKERFILE.format(token=token, long=LONG.format(token=token))},
                        name=name)

    def cleanup():
        for image in docker_client.images.list(filters={"dangling": True}):
            try:
                docker_client.images.remove(image.id)
            except Exception:  # noqa: BLE001 - a parent another image uses
                pass
    request.addfinalizer(cleanup)
    return root, token


def test_a_terminal_gets_the_colours_and_a_pipe_gets_none(tty_cli, cli, make_project, docker_client, request):
    root, token = _project(make_project, docker_client, request)
    on_tty = tty_cli("run", str(root), "--wait", columns=200)
    assert on_tty.code != 0
    assert f"\x1b[91mWARNING: running as root {token}" in on_tty.out, on_tty.out
    assert "\\x1b" not in on_tty.out

    root, token = _project(make_project, docker_client, request)
    piped = cli("run", str(root), "--wait")
    assert piped.code != 0
    assert f"  WARNING: running as root {token}" in piped.err.splitlines(), piped.err
    assert "\x1b" not in piped.err and "\\x1b" not in piped.err and "[91m" not in piped.err


def test_a_failed_step_is_shortened_between_words(cli, make_project, docker_client, request):
    root, token = _project(make_project, docker_client, request)
    failed = cli("run", str(root), "--wait")
    assert_one_line_error(failed, "building Dockerfile failed at step 3 (RUN echo preparing", "non-zero code: 3")
    error = next(line for line in failed.err.splitlines() if line.startswith("workbench: error:"))
    shown = re.search(r"at step 3 \((.*?) …\)", error)
    assert shown, error
    command = "RUN " + LONG.format(token=token)
    assert command.startswith(shown[1]) and command[len(shown[1])] == " ", (shown[1], command)  # whole words
    assert len(shown[1]) <= 80
