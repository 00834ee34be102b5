"""The [deploy] keys for a deployment left alone: the smoke request, the listen address, the token, the
model container's memory limit and read-only root. Each bad value is one line naming the file, line and key."""

from __future__ import annotations

import pytest

from workbench.errors import SpecError
from workbench.projects.spec import Smoke, load_spec

SPEC = """\
[experiments.train]
image = "python:3.11-slim"
command = ["python", "train.py"]

[deploy]
image = "python:3.11-slim"
command = ["python", "serve.py", "--model", "{model}", "--port", "{port}"]
EXTRA
"""


def deploy_of(make_project, extra: str, files: dict[str, str] | None = None):
    return load_spec(make_project(SPEC.replace("EXTRA", extra), files)).deploy


def test_defaults_keep_todays_behaviour(make_project):
    deploy = deploy_of(make_project, "")
    assert deploy.smoke is None
    assert deploy.bind == "0.0.0.0" and deploy.auth == "none"
    assert deploy.memory is None and deploy.read_only is True


def test_every_key_parsed(make_project):
    deploy = deploy_of(make_project, """\
smoke = { path = "/predict", body = '{"pixels": [0, 1]}', expect_status = 201, expect_json_keys = ["digit", "p"] }
bind = "127.0.0.1"
auth = "token"
memory = "2g"
read_only = false
""")
    assert deploy.smoke == Smoke(path="/predict", body=b'{"pixels": [0, 1]}', expect_status=201,
                                 expect_json_keys=("digit", "p"))
    assert deploy.smoke.method == "POST"
    assert deploy.bind == "127.0.0.1" and deploy.auth == "token"
    assert deploy.memory == 2 * 1024 ** 3 and deploy.read_only is False


def test_smoke_without_body_is_a_get_expecting_200(make_project):
    smoke = deploy_of(make_project, 'smoke = { path = "/ready" }').smoke
    assert smoke == Smoke(path="/ready") and smoke.method == "GET"
    assert smoke.body is None and smoke.expect_status == 200 and smoke.expect_json_keys == ()


def test_smoke_as_its_own_table_and_an_empty_body_is_still_a_post(make_project):
    smoke = deploy_of(make_project, '[deploy.smoke]\npath = "/predict"\nbody = ""\n').smoke
    assert smoke.body == b"" and smoke.method == "POST"


def test_body_file_is_read_at_load_relative_to_the_project(make_project):
    body = '{"pixels": [' + ", ".join(["3"] * 64) + "]}\n"
    smoke = deploy_of(make_project, 'smoke = { path = "/predict", body_file = "smoke/digit.json" }',
                      {"smoke/digit.json": body}).smoke
    assert smoke.body == body.encode() and smoke.method == "POST"


def test_body_file_of_exactly_1_mib_is_taken(make_project):
    smoke = deploy_of(make_project, 'smoke = { path = "/p", body_file = "big.json" }',
                      {"big.json": "x" * 1024 * 1024}).smoke
    assert len(smoke.body) == 1024 * 1024


@pytest.mark.parametrize("bind, expected", [("0.0.0.0", "0.0.0.0"), ("127.0.0.1", "127.0.0.1"),
                                            ("10.1.2.3", "10.1.2.3"), ("::", "::"), ("::1", "::1"),
                                            ("0:0:0:0:0:0:0:1", "::1")])
def test_bind_takes_ip_addresses(make_project, bind, expected):
    assert deploy_of(make_project, f'bind = "{bind}"').bind == expected


@pytest.mark.parametrize("memory, expected", [('"512m"', 512 * 1024 ** 2), ('"1.5g"', 1536 * 1024 ** 2),
                                              ('"65536k"', 64 * 1024 ** 2), ("268435456", 256 * 1024 ** 2),
                                              ('"6m"', 6 * 1024 ** 2)])
def test_memory_in_bytes(make_project, memory, expected):
    assert deploy_of(make_project, f"memory = {memory}").memory == expected


@pytest.mark.parametrize(
    "extra, line, needle",
    [
        ('smoke = { body = "{}" }', 8, "deploy.smoke: missing `path`"),
        ('smoke = { path = "predict" }', 8, "deploy.smoke.path: expected a URL path starting with /"),
        ('smoke = { path = "/pre dict" }', 8, "deploy.smoke.path: expected a URL path starting with /"),
        ('smoke = { path = "" }', 8, "deploy.smoke.path: expected a non-empty string"),
        ("smoke = { path = 5 }", 8, "deploy.smoke.path: expected a non-empty string, got number 5"),
        ('smoke = "/predict"', 8, "deploy.smoke: expected a table, got string '/predict'"),
        ('smoke = { path = "/p", method = "PUT" }', 8,
         "deploy.smoke.method: unknown key (allowed here: body, body_file, expect_json_keys, expect_status, path)"),
        ('smoke = { path = "/p", expect_status = 600 }', 8,
         "deploy.smoke.expect_status: expected an HTTP status from 100 to 599, got number 600"),
        ('smoke = { path = "/p", expect_status = "200" }', 8, "deploy.smoke.expect_status: expected an HTTP status"),
        ('smoke = { path = "/p", expect_status = true }', 8, "deploy.smoke.expect_status: expected an HTTP status"),
        ('smoke = { path = "/p", expect_json_keys = "digit" }', 8,
         "deploy.smoke.expect_json_keys: expected a list of strings, got string 'digit'"),
        ('smoke = { path = "/p", expect_json_keys = [1] }', 8, "deploy.smoke.expect_json_keys: expected a list"),
        ('smoke = { path = "/p", expect_json_keys = [""] }', 8, "deploy.smoke.expect_json_keys: a key name must"),
        ('smoke = { path = "/p", body = 3 }', 8, "deploy.smoke.body: expected a non-empty string, got number 3"),
        ('smoke = { path = "/p", body = "{}", body_file = "b.json" }', 8,
         "deploy.smoke: set `body` or `body_file`, not both"),
        ('smoke = { path = "/p", body_file = "absent.json" }', 8, "deploy.smoke.body_file: absent.json is not a file"),
        ('smoke = { path = "/p", body_file = "sub" }', 8, "deploy.smoke.body_file: sub is not a file"),
        ('smoke = { path = "/p", body_file = "/etc/hostname" }', 8,
         "deploy.smoke.body_file: '/etc/hostname' must be a path inside the project"),
        ('smoke = { path = "/p", body_file = "../b.json" }', 8, "deploy.smoke.body_file: '../b.json' must be a path"),
        ('smoke = { path = "/p", body_file = "~/b.json" }', 8, "deploy.smoke.body_file: '~/b.json' must be a path"),
        ('smoke = { path = "/p", body_file = "big.json" }', 8,
         "deploy.smoke.body_file: big.json is 1,048,577 bytes; a smoke body is at most 1 MiB"),
        ('[deploy.smoke]\npath = "/p"\nexpect_status = 0', 10, "deploy.smoke.expect_status: expected an HTTP status"),
        ('bind = "localhost"', 8, "deploy.bind: expected an IP address (\"0.0.0.0\": all addresses"),
        ('bind = "127.0.0.1:80"', 8, "deploy.bind: expected an IP address"),
        ('bind = "300.1.1.1"', 8, "deploy.bind: expected an IP address"),
        ("bind = 0", 8, "deploy.bind: expected a non-empty string, got number 0"),
        ('auth = "basic"', 8, "deploy.auth: expected \"token\" (callers send Authorization: Bearer <token>) or "
                              "\"none\", got string 'basic'"),
        ("auth = true", 8, "deploy.auth: expected \"token\""),
        ('memory = "lots"', 8, "deploy.memory: expected a size such as \"2g\" or \"512m\", got string 'lots'"),
        ('memory = "2t"', 8, "deploy.memory: expected a size"),
        ('memory = "-1g"', 8, "deploy.memory: expected a size"),
        ("memory = 0", 8, "deploy.memory: 0 bytes is below Docker's smallest memory limit (6m)"),
        ('memory = "1m"', 8, "deploy.memory: 1,048,576 bytes is below Docker's smallest memory limit"),
        ("memory = true", 8, "deploy.memory: expected a size"),
        ('read_only = "yes"', 8, "deploy.read_only: expected true or false, got string 'yes'"),
        ("read_only = 1", 8, "deploy.read_only: expected true or false, got number 1"),
        ('health = "health"', 8, "deploy.health: expected a URL path starting with /"),
        ('health = "/he alth"', 8, "deploy.health: expected a URL path starting with /"),
        ("readonly = true", 8, "deploy.readonly: unknown key (allowed here: auth, bind, command"),
    ],
)
def test_bad_deploy_key_is_one_line_naming_file_line_and_key(make_project, extra, line, needle):
    root = make_project(SPEC.replace("EXTRA", extra), {"b.json": "{}", "sub/x": "", "big.json": "x" * (1024 * 1024 + 1)})
    with pytest.raises(SpecError) as caught:
        load_spec(root)
    message = str(caught.value)
    assert message.startswith(f"{root / 'workbench.toml'}:{line}: "), message
    assert needle in message, message
    assert "\n" not in message

