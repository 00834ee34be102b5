"""Model references and the content-addressed model files: `NAME`, `NAME:VERSION`, `NAME@ALIAS`; each
registered file kept once under `<data>/models/<sha256>`, checked against its hash whenever it is used."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import WorkbenchError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        return self.name + (f":{self.version}" if self.version is not None else "") + (f"@{self.alias}" if self.alias else "")


def check_name(value: str, what: str = "model name") -> str:
    if not NAME.fullmatch(value or ""):
        raise WorkbenchError(f"{what} {value!r} is not valid: letters, digits, '.', '_' and '-', up to 63, "
                             "starting with a letter or digit")
    return value


def parse_ref(text: str) -> ModelRef:
    """NAME, NAME:VERSION or NAME@ALIAS."""
    text = (text or "").strip()
    if "@" in text:
        name, _, alias = text.partition("@")
        return ModelRef(check_name(name), alias=check_name(alias, "alias"))
    if ":" in text:
        name, _, version = text.partition(":")
        if not version.isdigit() or int(version) < 1:
            raise WorkbenchError(f"model version {version!r} in {text!r} is not a number from 1",
                                 hint="write NAME:VERSION (e.g. mnist:2) or NAME@ALIAS (e.g. mnist@production)")
        return ModelRef(check_name(name), version=int(version))
    return ModelRef(check_name(text))


def sha256_of(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def store_blob(models_dir: Path, source: Path, expected: str | None = None) -> tuple[str, int]:
    """Copies `source` into the model store under its sha256 (once: an identical file is kept as is);
    (sha256, size). `expected`: the hash recorded for it (a changed file is refused)."""
    models_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=models_dir, prefix=".incoming-")
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        sha = digest.hexdigest()
        if expected and sha != expected:
            raise WorkbenchError(f"{source} changed since the run recorded it (sha256 {sha[:12]}, recorded "
                                 f"{expected[:12]})", hint="register from a run whose files are as it left them")
        final = models_dir / sha
        if final.exists() and sha256_of(final) == sha:
            os.unlink(tmp)
        else:
            os.replace(tmp, final)
            os.chmod(final, 0o444)
        return sha, size
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def verified_blob(models_dir: Path, sha: str, label: str) -> Path:
    """The stored file of a version, checked: missing or changed is an error naming the version."""
    path = models_dir / sha
    if not path.is_file():
        raise WorkbenchError(f"the file of {label} is missing from the model store ({path})",
                             hint="register it again from its run: `workbench models register RUN ARTIFACT --name NAME`")
    actual = sha256_of(path)
    if actual != sha:
        raise WorkbenchError(f"the file of {label} no longer matches its sha256 (recorded {sha[:12]}, now {actual[:12]})",
                             hint="it was changed on disk; register it again from its run")
    return path
