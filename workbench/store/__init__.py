"""SQLite: schema, migrations and queries. The only package that writes SQL."""

from workbench.store.db import Store, open_store

__all__ = ["Store", "open_store"]
