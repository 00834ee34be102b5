"""Keeps a lease alive from a thread while slow work (a build, a pull) runs, so the lease can be short:
when the holder dies, others may take over within seconds rather than hours."""

from __future__ import annotations

import threading

from workbench.store import Store


class LeaseKeeper:
    def __init__(self, store: Store, name: str, owner: str, ttl: float, every: float) -> None:
        self.store, self.name, self.owner, self.ttl, self.every = store, name, owner, ttl, every
        self._stop = threading.Event()
        self.lost = threading.Event()  # another owner holds it now (ours expired while we were stuck)
        self._thread = threading.Thread(target=self._renew, name=f"lease-{name}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.every):
            try:
                if not self.store.acquire_lease(self.name, self.owner, self.ttl):
                    self.lost.set()
            except Exception:  # noqa: BLE001 - a busy or failing database: the next tick tries again
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.every + 1)
