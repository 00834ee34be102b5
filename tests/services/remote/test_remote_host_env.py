"""Smoke tests of the `remote_env` fixture itself: over plain OpenSSH the hosts reach the SECOND engine (not
the main one), GPU requests there are pinned through the stand-in NVIDIA hook, the fake nvidia-smi answers,
the host without Docker has none, the target is only reachable through its jump host, and the main engine
(docker0) still works."""

from __future__ import annotations

import docker
import pytest

from remote_hosts import BRIDGE_SUBNET, register

pytestmark = pytest.mark.docker  # needs the main engine too (busybox is copied from it)

H100_UUID = "GPU-cccebab5-6be7-2a4d-6d66-fa7a59c3aa2f"


def ok(done) -> str:
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done.stdout


def test_the_gpu_host_talks_to_the_second_engine(remote_env, docker_client):
    out = ok(remote_env.ssh(remote_env.gpu, "echo $DOCKER_HOST; docker info --format '{{.DockerRootDir}}'"))
    assert out.split() == [remote_env.docker_host, str(remote_env.root / "data")]
    assert docker_client.info()["DockerRootDir"] != str(remote_env.root / "data")
    remote_images = ok(remote_env.ssh(remote_env.gpu, "docker image ls --format '{{.Repository}}:{{.Tag}}'"))
    assert "busybox:latest" in remote_images.split()
    assert "python:3.11-slim" not in remote_images.split()  # Workbench must transfer what the remote lacks
    docker_client.images.get("python:3.11-slim")  # ... while the main engine has it
    with pytest.raises(docker.errors.ImageNotFound):
        remote_env.docker.images.get("python:3.11-slim")


def test_a_gpu_request_there_is_pinned_to_the_requested_uuid(remote_env):
    uuid = remote_env.gpu_uuids[0]
    out = ok(remote_env.ssh(remote_env.gpu, f"docker run --rm --gpus '\"device={uuid}\"' busybox:latest "
                                            "sh -c 'echo $NVIDIA_VISIBLE_DEVICES'"))
    assert out.strip() == uuid
    # and through docker-py's device_requests, as Workbench asks
    request = docker.types.DeviceRequest(device_ids=[uuid], capabilities=[["gpu"]])
    logs = remote_env.docker.containers.run("busybox:latest", ["sh", "-c", "echo $NVIDIA_VISIBLE_DEVICES"],
                                            device_requests=[request], remove=True)
    assert logs.decode().strip() == uuid


def test_the_main_engine_still_has_no_gpu_runtime(docker_client):
    request = docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])
    with pytest.raises(docker.errors.APIError, match="could not select device driver"):
        docker_client.containers.run("busybox:latest", ["true"], device_requests=[request], remove=True)


def test_nvidia_smi_over_ssh_is_the_h100_fixture(remote_env):
    assert remote_env.gpu_uuids == [H100_UUID]
    out = ok(remote_env.ssh(remote_env.gpu, "nvidia-smi -L"))
    assert out.strip() == f"GPU 0: NVIDIA H100 80GB HBM3 (UUID: {H100_UUID})"


def test_the_nodocker_host_has_a_gpu_but_no_engine(remote_env):
    done = remote_env.ssh(remote_env.nodocker, "echo $DOCKER_HOST; docker info")
    assert done.returncode != 0
    assert done.stdout.split()[0] == remote_env.missing_docker_host
    assert H100_UUID in ok(remote_env.ssh(remote_env.nodocker, "nvidia-smi -L"))


def test_the_target_is_only_reachable_through_its_jump_host(remote_env):
    env = remote_env
    direct = env.ssh(env.target, "true", timeout=30)
    assert direct.returncode != 0  # no route from here
    out = ok(env.ssh(env.target, "docker info --format '{{.DockerRootDir}}'; nvidia-smi -L", jump=env.jump))
    assert out.splitlines() == [str(env.root / "data"), f"GPU 0: NVIDIA H100 80GB HBM3 (UUID: {H100_UUID})"]


def test_containers_of_the_second_engine_are_on_its_own_bridge(remote_env, docker_client):
    container = remote_env.docker.containers.run("busybox:latest", ["sleep", "30"], detach=True)
    try:
        container.reload()
        address = container.attrs["NetworkSettings"]["IPAddress"]
        assert address.startswith(BRIDGE_SUBNET.rsplit(".", 1)[0] + "."), address
        assert container.id not in [c.id for c in docker_client.containers.list(all=True)]
    finally:
        container.remove(force=True)


def test_the_main_engine_and_docker0_still_work(remote_env, docker_client):
    out = docker_client.containers.run("busybox:latest", ["sh", "-c", "echo alive; ip -4 addr 2>/dev/null || true"],
                                       remove=True).decode()
    assert out.splitlines()[0] == "alive"
    network = docker_client.networks.get("bridge")
    assert network.attrs["Options"].get("com.docker.network.bridge.name") == "docker0"
    container = docker_client.containers.run("busybox:latest", ["sleep", "30"], detach=True)
    try:
        container.reload()
        assert container.attrs["NetworkSettings"]["IPAddress"].startswith("172.17.")
    finally:
        container.remove(force=True)


def test_register_helper_adds_and_trusts_the_hosts(cli, remote_env):
    register(cli, "remote", remote_env.gpu, remote_env.user_key)
    stats = cli("machines", "stats", "remote", "--json")
    assert stats.code == 0, stats.err
    assert [g["uuid"] for g in stats.json()["gpus"]] == remote_env.gpu_uuids
    register(cli, "behind", remote_env.target, remote_env.user_key, jump=remote_env.jump)
    stats = cli("machines", "stats", "behind", "--json")
    assert stats.code == 0, stats.err
    assert [g["uuid"] for g in stats.json()["gpus"]] == remote_env.gpu_uuids
