"""Where Workbench keeps its files (docs/architecture.md, Where state lives)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Dirs:
    config: Path
    data: Path

    @property
    def db_path(self) -> Path:
        return self.data / "workbench.db"

    @property
    def snapshots(self) -> Path:
        return self.data / "snapshots"

    @property
    def runs(self) -> Path:
        return self.data / "runs"

    def run_dir(self, run_id: str) -> Path:
        return self.runs / run_id

    @property
    def models(self) -> Path:
        """Registered model files, each named by its sha256 (content-addressed: registered once)."""
        return self.data / "models"

    @property
    def known_hosts(self) -> Path:
        return self.data / "known_hosts"

    @property
    def config_file(self) -> Path:
        return self.config / "config.toml"

    def ensure(self) -> "Dirs":
        for path in (self.config, self.data, self.snapshots, self.runs):
            path.mkdir(parents=True, exist_ok=True)
        return self


def resolve_dirs(home: str | os.PathLike[str] | None = None) -> Dirs:
    """$WORKBENCH_HOME holds everything when set; otherwise the platform's config and data dirs."""
    home = home or os.environ.get("WORKBENCH_HOME")
    if home:
        root = Path(home).expanduser().resolve()
        return Dirs(config=root, data=root)
    import platformdirs

    return Dirs(
        config=Path(platformdirs.user_config_dir("workbench")),
        data=Path(platformdirs.user_data_dir("workbench")),
    )
