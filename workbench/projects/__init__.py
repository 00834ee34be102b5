"""Project folders: the workbench.toml spec, snapshots, and (later) folder watching."""
