"""Issue 8, items 3 and 5: artifacts stay inside the output dir; sensitive host paths are not mounted by accident."""

from __future__ import annotations

import os

import pytest

from helpers import assert_one_line_error
from workbench.errors import SpecError
from workbench.projects.spec import load_spec


def _experiment(extra: str) -> str:
    return f"""
[project]
name = "paths"
[experiments.x]
image = "busybox:latest"
command = ["true"]
{extra}
"""


@pytest.mark.parametrize("artifact", ["../../etc/x", "/etc/passwd", "a/../../b", "~/.ssh/id_rsa", ".", ""])
def test_artifacts_outside_the_output_dir_are_spec_errors(make_project, artifact):
    root = make_project(_experiment(f"artifacts = [\"model.npz\", {artifact!r}]".replace("'", '"')))
    with pytest.raises(SpecError) as err:
        load_spec(root)
    assert "workbench.toml:7: experiments.x.artifacts" in str(err.value)


def test_relative_artifacts_are_kept_normalised(make_project):
    root = make_project(_experiment('artifacts = ["model.npz", "ckpt/./last.pt", "a/b/"]'))
    assert load_spec(root).experiments["x"].artifacts == ["model.npz", "ckpt/last.pt", "a/b"]


@pytest.mark.parametrize("source", ["/", "/etc", "/var/run/docker.sock", "/root/../etc/ssl", "~", "~/.ssh",
                                    "~/.aws/credentials", "{home}", "{home}/runs", "/proc/self"])
def test_sensitive_mount_sources_are_refused(make_project, home, source):
    source = source.format(home=home)
    root = make_project(_experiment(f'mounts = ["{source}:/host"]'))
    with pytest.raises(SpecError) as err:
        load_spec(root)
    message = str(err.value)
    assert "experiments.x.mounts" in message and "refused" in message and "allow_sensitive_mounts" in message


def test_sensitive_mounts_pass_when_the_spec_says_so_and_ordinary_ones_always(make_project, tmp_path):
    data = tmp_path / "datasets"
    data.mkdir()
    allowed = make_project(_experiment('mounts = ["/etc:/host/etc:ro"]\nallow_sensitive_mounts = true'))
    assert load_spec(allowed).experiments["x"].mounts[0].source == "/etc"
    ordinary = make_project(_experiment(f'mounts = ["{data}:/data:ro", "~/datasets-not-there:/d2"]'))
    assert [m.target for m in load_spec(ordinary).experiments["x"].mounts] == ["/data", "/d2"]
    wrong = make_project(_experiment('allow_sensitive_mounts = "yes"'))
    with pytest.raises(SpecError, match="allow_sensitive_mounts: expected true or false"):
        load_spec(wrong)


def test_cli_refuses_a_root_mount_in_one_line(cli, make_project):
    root = make_project(_experiment('mounts = ["/:/host"]\nuser = "root"'))
    assert_one_line_error(cli("run", str(root)), "whole file system", "allow_sensitive_mounts")


@pytest.mark.usefixtures("docker_client")
def test_root_container_with_a_writable_mount_is_warned_about(cli, make_project, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    root = make_project(_experiment(f'mounts = ["{shared}:/shared"]\nuser = "root"').replace(
        'command = ["true"]', 'command = ["sh", "-c", "touch /shared/made-by-root"]'))
    done = cli("run", str(root), "--wait", "--json")
    assert done.code == 0, done.err
    assert "warning: the container runs as root with writable host mounts" in done.err
    assert (shared / "made-by-root").stat().st_uid == 0
    events = cli("runs", "show", done.json()["id"], "--json").json()["events"]
    assert any(e["kind"] == "warning" and str(shared) in e["message"] for e in events)
    read_only = make_project(_experiment(f'mounts = ["{shared}:/shared:ro"]\nuser = "root"'))
    quiet = cli("run", str(read_only), "--wait")
    assert quiet.code == 0 and "writable host mounts" not in quiet.err


def test_a_credentials_folder_behind_a_link_is_still_refused(make_project, tmp_path, monkeypatch):
    fake_home = tmp_path / "home"
    keys = tmp_path / "elsewhere" / "keys"
    keys.mkdir(parents=True)
    fake_home.mkdir()
    (fake_home / ".ssh").symlink_to(keys)
    monkeypatch.setenv("HOME", str(fake_home))
    for source in (str(keys), "~/.ssh"):
        root = make_project(_experiment(f'mounts = ["{source}:/keys:ro"]'))
        with pytest.raises(SpecError, match="your ~/.ssh"):
            load_spec(root)


@pytest.mark.parametrize("name", ["api_token", "db_password", "openai_api_key", "aws_secret"])
def test_secret_looking_params_are_refused_towards_env(make_project, name):
    root = make_project(_experiment(f'params = {{ {name} = "x" }}'))
    with pytest.raises(SpecError, match="looks like a secret.*`env`"):
        load_spec(root)


def test_ordinary_params_that_merely_contain_key_or_pass_are_fine(make_project):
    root = make_project(_experiment('params = { key_dim = 64, n_passes = 3, keep_prob = 0.9 }'))
    assert set(load_spec(root).experiments["x"].params) == {"key_dim", "n_passes", "keep_prob"}


def test_experiment_names_are_plain(make_project):
    root = make_project('[experiments."x\\u001b[2J"]\nimage = "busybox:latest"\ncommand = ["true"]\n')
    with pytest.raises(SpecError, match="experiment names use letters"):
        load_spec(root)


def test_a_mount_on_a_host_is_judged_as_written_there():
    from workbench.projects.sensitive import remote_mount_reason

    assert remote_mount_reason("/") == "the host's whole file system"
    assert remote_mount_reason("/etc/") == "the host's /etc"
    assert remote_mount_reason("/var/lib/docker/volumes") == "part of the host's /var/lib/docker"
    assert remote_mount_reason("/var") == "a folder holding the host's /var/run"
    assert remote_mount_reason("/home/alice") and remote_mount_reason("/home")
    assert remote_mount_reason("/data/../home/bob/.aws/x") == "a credentials folder (.aws)"
    assert remote_mount_reason("/data/sets") is None and remote_mount_reason("/home/alice/datasets") is None
