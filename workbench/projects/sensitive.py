"""Host paths a container must not get by accident: the whole host, its system directories, the user's
home and credentials, and Workbench's own data (docs/architecture.md, Security). A spec may still mount them, by
saying so with `allow_sensitive_mounts = true`."""

from __future__ import annotations

import os
from pathlib import Path

SYSTEM = ("/etc", "/root", "/boot", "/proc", "/sys", "/dev", "/usr", "/bin", "/sbin", "/lib", "/lib32",
          "/lib64", "/libx32", "/run", "/var/run", "/var/lib/docker", "/var/lib/containerd")
CREDENTIALS = (".ssh", ".gnupg", ".aws", ".azure", ".kube", ".docker", ".config/gcloud", ".netrc",
               ".git-credentials", ".pypirc", ".password-store")


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(os.path.expanduser(str(path))))


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def protected_paths() -> list[tuple[Path, str]]:
    """(path, what it is) of everything that is refused as a mount source, and whose parents are too."""
    from workbench.dirs import resolve_dirs

    home = _real("~")
    dirs = resolve_dirs()
    found = [(_real(dirs.data), "Workbench's data dir"), (_real(dirs.config), "Workbench's config dir")]
    found += [(_real(home / name), f"your ~/{name}") for name in CREDENTIALS]  # resolved: ~/.ssh may be a link
    found += [(_real(p), f"the host's {p}") for p in SYSTEM if _real(p) != home]
    return found


def sensitive_mount_reason(source: str) -> str | None:
    """Why mounting `source` would hand the container something sensitive, or None."""
    path = _real(source)
    if path == Path("/"):
        return "the host's whole file system"
    home = _real("~")
    if path == home or (path in home.parents and path != Path("/")):
        return f"your home directory {home} (keys and credentials included)"
    for protected, what in protected_paths():
        if _inside(path, protected):
            return what if path == protected else f"part of {what}"
        if path in protected.parents:
            return f"a folder holding {what}"
    return None


def remote_mount_reason(source: str) -> str | None:
    """`sensitive_mount_reason` for a path on another machine: read as written (nothing of this workstation's
    file system says what it is there), so the whole file system, the system dirs and credential dirs."""
    import posixpath

    path = posixpath.normpath(source)
    if path == "/" or not path.startswith("/"):
        return "the host's whole file system" if path == "/" else None
    for system in SYSTEM:
        if path == system:
            return f"the host's {system}"
        if path.startswith(system + "/"):
            return f"part of the host's {system}"
        if system.startswith(path + "/"):
            return f"a folder holding the host's {system}"
    parts = path.split("/")
    for name in CREDENTIALS:
        if name.split("/")[0] in parts:
            return f"a credentials folder ({name})"
    if len(parts) == 3 and parts[1] == "home" or path == "/home":
        return "a home directory on the host (keys and credentials included)"
    return None
