"""Issue 22 item 10: the image of a Dockerfile project is keyed by its build inputs (the Dockerfile and the
files its COPY/ADD lines take, less .dockerignore's), so a code edit the image does not hold reuses it with
no build output and no new tag, and a build whose every step is cached is one line; against the real
engine."""

from __future__ import annotations

import secrets
from types import SimpleNamespace

import pytest

from workbench.projects.dockerfile import build_inputs_key, copied_sources, dockerignored

pytestmark = pytest.mark.docker

DOCKERFILE = """FROM busybox:latest
# the code (train.py) is not copied: it is mounted with the snapshot at run time
COPY requirements.txt conf/ /opt/
RUN cat /opt/requirements.txt > /v
"""
FILES = {"Dockerfile": DOCKERFILE, "requirements.txt": "numpy==1.26\n", "conf/model.cfg": "layers = 2\n",
         "conf/scratch.tmp": "scribbles\n", ".dockerignore": "conf/*.tmp\n", "train.py": "print('v1')\n"}


def _tags(client, repository: str) -> list[str]:
    return sorted(t for image in client.images.list(name=repository) for t in image.tags)


def test_a_code_edit_reuses_the_image_and_an_edit_to_a_copied_file_builds(cli, make_project, docker_client):
    name = f"inputs-{secrets.token_hex(3)}"
    repository = f"workbench/{name}"
    spec = f'[project]\nname = "{name}"\n[experiments.t]\ndockerfile = "Dockerfile"\ncommand = ["cat", "/v"]\n'
    root = make_project(spec, {**FILES, "requirements.txt": f"numpy==1.26  # {name}\n"}, name=name)  # never cached

    def run() -> tuple[str, str]:
        done = cli("run", str(root), "--wait", "--json")
        assert done.code == 0, done.err
        return cli("runs", "show", done.json()["id"], "--json").json()["image_id"], done.err

    try:
        first, said = run()
        assert f"building Dockerfile as {repository}:" in said
        # code, a file .dockerignore leaves out of a copied folder, and the spec: none is a build input
        (root / "train.py").write_text("print('v2')\n")
        (root / "conf/scratch.tmp").write_text("more scribbles\n")
        (root / "workbench.toml").write_text(spec + "# a note\n")
        again, said = run()
        assert again == first
        assert "building" not in said and "Step " not in said and "up to date" not in said, said
        assert len(_tags(docker_client, repository)) == 1

        # a comment in the Dockerfile: a new key, but every step is cached: one line, the same image
        (root / "Dockerfile").write_text(DOCKERFILE + "# pinned\n")
        cached, said = run()
        assert cached == first
        built = [line for line in said.splitlines() if repository in line]
        assert len(built) == 1 and built[0].startswith(f"image {repository}:") and "up to date" in built[0], said
        assert "Step " not in said

        (root / "conf/model.cfg").write_text("layers = 3\n")  # copied: the image is built again
        rebuilt, said = run()
        assert rebuilt != first and f"building Dockerfile as {repository}:" in said and "Step 3/" in said
    finally:
        for image in docker_client.images.list(name=repository):
            docker_client.images.remove(image.id, force=True)


def _entries(*paths: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(kind="f", rel=p, mode=0o444, data=f"sha-of-{p}") for p in paths]


def test_what_a_dockerfile_copies_and_what_dockerignore_leaves_out():
    assert copied_sources('COPY --chown=1:1 ["a b.txt", "src/*.py", "/dst/"]\nADD https://x.org/f /f\n'
                          "COPY --from=builder /out /out\nCOPY ./lib/ /lib\n") == ["a b.txt", "src/*.py", "lib"]
    assert copied_sources("COPY . /app\n") == ["."]
    assert copied_sources("ARG D=src\nCOPY $D /app\n") == ["."]  # a variable: the whole context, never a guess
    ignored = dockerignored("# notes\ndata/\n**/*.ckpt\n!data/keep.csv\n")
    assert ignored("data/a.csv") and ignored("models/x/best.ckpt") and ignored("best.ckpt")
    assert not ignored("data/keep.csv")
    assert copied_sources("COPY src/[ab].py /app/\n") == ["."]  # a class: the whole context, never a guess
    assert not ignored("src/train.py")
    files = _entries("Dockerfile", "src/a.py", "src/sub/b.py", "train.py", "data/big.bin")
    key = build_inputs_key("Dockerfile", "FROM x\nCOPY src/*.py /app/\n", "", files)
    edited = [*files[:3], SimpleNamespace(kind="f", rel="train.py", mode=0o444, data="new"), files[4]]
    assert build_inputs_key("Dockerfile", "FROM x\nCOPY src/*.py /app/\n", "", edited) == key  # not copied
    moved = [files[0], SimpleNamespace(kind="f", rel="src/a.py", mode=0o444, data="new"), *files[2:]]
    assert build_inputs_key("Dockerfile", "FROM x\nCOPY src/*.py /app/\n", "", moved) != key
    whole = build_inputs_key("Dockerfile", "FROM x\nCOPY . /app\n", "data/\n", files)
    bigger = [*files[:4], SimpleNamespace(kind="f", rel="data/big.bin", mode=0o444, data="new")]
    assert build_inputs_key("Dockerfile", "FROM x\nCOPY . /app\n", "data/\n", bigger) == whole  # ignored
    assert build_inputs_key("Dockerfile", "FROM x\nCOPY . /app\n", "", bigger) != \
        build_inputs_key("Dockerfile", "FROM x\nCOPY . /app\n", "", files)
