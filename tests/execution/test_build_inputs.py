"""Issue 22 item 10: the image of a Dockerfile project is keyed by its build inputs (the Dockerfile and the
files its COPY/ADD lines take, less .dockerignore's), so a code edit the image does not hold reuses it with
no build output and no new tag, and a build whose every step is cached is one line; and gc takes the key of
a snapshot once however many queued runs share it. Against the real engine (the key's reading of a
Dockerfile: tests/projects/test_dockerfile.py)."""

from __future__ import annotations

import os
import secrets
import time

import pytest

from helpers import wait_for
from workbench.projects import snapshot
from workbench.projects.dockerfile import build_inputs_key
from workbench.services import Workbench

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


def test_gc_takes_the_key_of_a_snapshot_once_for_all_the_queued_trials_sharing_it(cli, make_project, docker_client,
                                                                                  monkeypatch):
    name = f"gckeys-{secrets.token_hex(3)}"
    spec = (f'[project]\nname = "{name}"\n[experiments.t]\ndockerfile = "Dockerfile"\n'
            'command = ["sleep", "60"]\nparams = { i = 0 }\n[experiments.t.sweep]\n'
            f'i = {list(range(40))}\nmax_parallel = 1\n')
    code = {f"pkg/m{i}.py": f"x = {i}\n" for i in range(2000)}
    root = make_project(spec, {**FILES, **code, "requirements.txt": f"numpy==1.26  # {name}\n"}, name=name)
    sweep = None
    try:
        built = cli("run", str(root), "-p", "i=-1", "--json")  # an image of ours for gc to judge
        assert built.code == 0, built.err
        assert cli("runs", "cancel", built.json()["id"]).code == 0
        started = cli("sweep", str(root), "--json")
        assert started.code == 0, started.err
        sweep = started.json()["id"]
        reads = []
        real = snapshot.snapshot_manifest
        monkeypatch.setattr(snapshot, "snapshot_manifest", lambda store, tree: reads.append(tree) or real(store, tree))
        wb = Workbench()
        try:
            assert sum(r["status"] == "queued" for r in wb._services.store.active_runs()) >= 39
            began = time.perf_counter()
            wb.gc()
            took = time.perf_counter() - began
        finally:
            wb.close()
        print(f"gc with 40 trials of a 2,000-file snapshot queued: {took:.2f} s, {len(reads)} manifest read(s)")
        assert len(reads) == 1, reads  # 40 before: one build key per queued trial
    finally:
        if sweep:
            cli("sweeps", "cancel", sweep)
        wait_for(lambda: _removed(docker_client, f"workbench/{name}"), timeout=60, interval=0.5)


def _removed(client, repository: str) -> bool:
    """Removes the repository's images and the containers of them (a cancelled sweep's trial may still be
    stopping); whether all went."""
    import docker.errors

    for image in client.images.list(name=repository):
        for container in client.containers.list(all=True, filters={"ancestor": image.id}):
            container.remove(force=True)
        try:
            client.images.remove(image.id, force=True)
        except docker.errors.APIError:
            return False
    return True


# (the Dockerfile after its FROM, files, links, the file edited): an edit the image holds, then (the last two)
# edits it does not hold
IGNORE = "*.txt\n!requirement[s].txt\n"
KEYED = {
    "a linked folder copied": ("COPY lib /app/lib\n", {"vendor/lib/u.py": "u\n"}, {"lib": "vendor/lib"},
                               "vendor/lib/u.py"),
    "a linked file copied": ("COPY cfg.yaml /app/\n", {"real.cfg": "a: 1\n"}, {"cfg.yaml": "real.cfg"}, "real.cfg"),
    "a path through a link": ("COPY lib/u.py /app/\n", {"vendor/lib/u.py": "u\n"}, {"lib": "vendor/lib"},
                              "vendor/lib/u.py"),
    "a link a wildcard matches": ("COPY conf/*.yaml /app/\n", {"conf/own.yaml": "o\n", "common/base.yaml": "b\n"},
                                  {"conf/base.yaml": "../common/base.yaml"}, "common/base.yaml"),
    "a blank line in a continuation": ("COPY a.txt \\\n\nb.txt /app/x/\n", {"a.txt": "a\n", "b.txt": "b\n"}, {},
                                       "b.txt"),
    "a word continued": ("COPY src/ma\\\nin.py /app/\n", {"src/main.py": "m\n"}, {}, "src/main.py"),
    "a tab": ("COPY\ta.txt /app/\n", {"a.txt": "a\n"}, {}, "a.txt"),
    "a backtick escape": ("COPY a.txt `\n  b.txt /app/\n", {"a.txt": "a\n", "b.txt": "b\n"}, {}, "b.txt"),
    "a class re-included": ("COPY . /app\n", {".dockerignore": IGNORE, "requirements.txt": "numpy\n",
                                              "notes.txt": "n\n"}, {}, "requirements.txt"),
    "code no COPY names": ("COPY lib /app/lib\n", {"vendor/lib/u.py": "u\n", "train.py": "t\n"},
                           {"lib": "vendor/lib"}, "train.py"),
    "a file .dockerignore leaves out": ("COPY . /app\n", {".dockerignore": IGNORE, "requirements.txt": "numpy\n",
                                                          "notes.txt": "n\n"}, {}, "notes.txt"),
}


def test_the_key_changes_exactly_when_the_engine_builds_another_image(tmp_path, docker_client):
    """The engine's own cache is the judge: with it on, a COPY step gives the same image only when what it
    copies is the same. Each case is edited once; the key must change with the image (failed before: the
    first nine kept their key while the image changed, so the old image was reused)."""
    repository = f"wbkey-{secrets.token_hex(3)}"
    seen = {}
    try:
        for number, (case, (steps, files, links, edit)) in enumerate(KEYED.items()):
            root, store = tmp_path / f"p{number}", tmp_path / "snapshots"
            escape = "# escape=`\n" if "`" in steps else ""
            for rel, text in {**files, "Dockerfile": f"{escape}FROM busybox:latest\n{steps}"}.items():
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_text(text)
            for link, target in links.items():
                os.symlink(target, root / link)
            before = _key_and_image(docker_client, root, store, f"{repository}:{number}")
            (root / edit).write_text((root / edit).read_text() + "edited\n")
            after = _key_and_image(docker_client, root, store, f"{repository}:{number}")
            seen[case] = (before[0] != after[0], before[1] != after[1])
        assert all(key == image for key, image in seen.values()), seen
        assert [image for _, image in seen.values()] == [True] * 9 + [False] * 2, seen
    finally:
        wait_for(lambda: _removed(docker_client, repository), timeout=60, interval=0.5)


def _key_and_image(client, root, store, tag: str) -> tuple[str, str]:
    """The build-input key of `root`'s snapshot, as a launch takes it, and the image the engine builds from
    that snapshot as images.build does (docker-py sending the context, .dockerignore applied)."""
    taken = snapshot.take_snapshot(root, [], store)
    ignore = taken.path / ".dockerignore"
    key = build_inputs_key("Dockerfile", (taken.path / "Dockerfile").read_text(),
                           ignore.read_text() if ignore.exists() else "", snapshot.snapshot_manifest(store, taken.hash))
    image, _ = client.images.build(path=str(taken.path), dockerfile="Dockerfile", tag=tag, rm=True, forcerm=True)
    return key, image.id
