"""The replica choice of a request's first try, one replica or two, in every state a replica
can be in: the one-replica shortcut chooses exactly what the general choice does."""

from __future__ import annotations

import time

import pytest

from gateway.backends.replica import Replica
from gateway.backends.replica_set import ReplicaSet
from gateway.config.model import Backend
from gateway.errors import NoHealthyReplica

pytestmark = pytest.mark.anyio

KEY = ("m", None)


def _spoil(replica: Replica, state: str) -> None:
    if state == "ejected":
        replica.ejected_until = time.monotonic() + 60
    elif state == "down":
        replica.down = True
    elif state == "unready":
        replica.unready.add(KEY)
    elif state == "unready-absent":
        replica.unready.add(KEY)
        replica.absent.add(KEY)
    elif state == "ejected-absent":
        replica.ejected_until = time.monotonic() + 60
        replica.unready.add(KEY)
        replica.absent.add(KEY)


STATES = ["ok", "ejected", "down", "unready", "unready-absent", "ejected-absent"]
SERVES = {"ok", "unready-absent"}  # for KEY; without a key, every replica neither ejected nor down


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("key", [KEY, None])
@pytest.mark.parametrize("count", [1, 2])
async def test_the_first_choice(state: str, key: tuple[str, None] | None, count: int) -> None:
    urls = [f"http://127.0.0.1:{9000 + i}" for i in range(count)]
    replicas = ReplicaSet("b", Backend.model_validate({"kind": "triton", "urls": urls}), None)
    replicas.health.used.add(KEY)  # no lazy probe to start
    for replica in replicas.replicas:
        _spoil(replica, state)
    serves = state in SERVES if key is not None else state in {"ok", "unready", "unready-absent"}
    if not serves:
        with pytest.raises(NoHealthyReplica):
            replicas.choose(key, frozenset())
    else:
        assert replicas.choose(key, frozenset()) in replicas.replicas
        if count == 2:
            replicas.replicas[0].outstanding = 1  # the less busy one, of the two sampled
            assert replicas.choose(key, frozenset()) is replicas.replicas[1]
    await replicas.close()
