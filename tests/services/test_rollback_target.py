"""Where a rollback goes (issue 22 item 17), one rule for `deployments rollback`, `deployments show`'s
`rollback_to` and the app's question: of the versions kept, the one live most recently; a version whose
container is gone (`standby-gone`, made again from its image) counts, a removed one does not."""

from __future__ import annotations

from workbench.services.deploy import rollback_target


def target(version: int, state: str, state_at: float) -> dict:
    return {"version": version, "state": state, "state_at": state_at}


def test_the_kept_version_live_most_recently():
    targets = [target(1, "removed", 100), target(2, "standby", 200), target(3, "standby-gone", 300),
               target(4, "live", 300)]
    assert rollback_target(targets)["version"] == 3
    assert rollback_target([target(2, "standby", 400), target(3, "standby-gone", 300)])["version"] == 2


def test_none_when_none_is_kept():
    assert rollback_target([target(1, "removed", 100), target(4, "live", 300)]) is None
