"""Keeps a lease alive from a thread while slow work (a build, a pull) runs, so the lease can be short:
when the holder dies, others may take over within seconds rather than hours."""

from __future__ import annotations

import threading

from workbench.store import Store


class LeaseKeeper:
    """Renews `name`, or each of a list of names (which may grow while it runs: a group launch adds runs)."""

    def __init__(self, store: Store, name: str | list[str], owner: str, ttl: float, every: float) -> None:
        self.store, self.owner, self.ttl, self.every = store, owner, ttl, every
        self.names = [name] if isinstance(name, str) else name
        self._stop = threading.Event()
        self.lost = threading.Event()  # another owner holds it now (ours expired while we were stuck)
        self._thread = threading.Thread(target=self._renew, name=f"lease-{self.names[0] if self.names else 'group'}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.every):
            for name in list(self.names):
                try:
                    if not self.store.acquire_lease(name, self.owner, self.ttl):
                        self.lost.set()
                except Exception:  # noqa: BLE001 - a busy or failing database: the next tick tries again
                    pass

    def stop(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(timeout=self.every + 1)
