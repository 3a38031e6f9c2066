"""The decision of `evict-leader`, on plain types so it is tested without compiling wasm.

After PD's evict-leader scheduler and TiUP's eviction before a restart: every leader on the named
store moves to a healthy peer, spreading them over the up stores with the fewest leaders. Each
round proposes again whatever the store still leads, so leaders forced back are moved off again.
Regions with an action in flight are left to finish. Pure: the same input gives the same moves.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

#: (name, default, meaning) of every parameter.
PARAMS = [
    ("store", "", "the store (TiKV store id, etcd member id) to move every leader off; required"),
    ("max-proposals", "4", "proposals per round at most (the host's gate caps them again)"),
    ("retry-ms", "60000", "wait this long before proposing again a region whose move failed"),
]


class ParamError(Exception):
    """A parameter is unknown, missing or invalid."""


class DataError(Exception):
    """The observation lacks what the policy needs."""


@dataclass(frozen=True)
class Store:
    id: int
    #: Up, and able to lead (not a learner-only store such as TiFlash).
    up: bool
    leader_count: int


@dataclass(frozen=True)
class Region:
    id: int
    leader: Optional[int]
    peers: Tuple[int, ...]
    bytes_per_second: float


@dataclass(frozen=True)
class Move:
    region_id: int
    to_store_id: int
    reason: str
    score: float


@dataclass(frozen=True)
class Params:
    store: int
    max_proposals: int
    retry_ms: int = 60000


def _whole(value: str, what: str, limit: int) -> int:
    # str.isdigit() also accepts digits such as "²" that int() refuses: ASCII only.
    if not (value.isascii() and value.isdigit()) or int(value) >= limit:
        raise ParamError(f"{what}, got {value!r}")
    return int(value)


def parse_params(given: Sequence[Tuple[str, str]]) -> Params:
    """The parameters, with defaults; an unknown name or a bad value is a `ParamError`."""
    store: Optional[int] = None
    max_proposals = 4
    retry_ms = 60000
    for name, value in given:
        if name == "store":
            store = _whole(value, "store must be a store id (a whole number)", 1 << 64)
        elif name == "max-proposals":
            max_proposals = _whole(value, "max-proposals must be a whole number", (1 << 20) + 1)
        elif name == "retry-ms":
            retry_ms = _whole(value, "retry-ms must be milliseconds", 1 << 63)
        else:
            known = ", ".join(p[0] for p in PARAMS)
            raise ParamError(f"unknown parameter `{name}`; this policy takes {known}")
    if store is None:
        raise ParamError("store is required: --param store=<id> names the store to move leaders off")
    return Params(store, max_proposals, retry_ms)


def decide(stores: Sequence[Store], regions: Sequence[Region], in_flight: Sequence[int], params: Params) -> List[Move]:
    """Moves for the leaders `params.store` holds, hottest region first. `in_flight` lists the
    regions to leave alone this round: actions in flight, and moves that failed within retry-ms
    (so a region the cluster keeps refusing does not take every proposal slot)."""
    by_id: Dict[int, Store] = {s.id: s for s in stores}
    if params.store not in by_id:
        known = ", ".join(str(s.id) for s in sorted(stores, key=lambda s: s.id)) or "none"
        raise DataError(f"store {params.store} is not in this cluster (stores: {known})")
    # Leaders each healthy target holds, updated as moves are chosen so they spread.
    leaders = {s.id: s.leader_count for s in stores if s.up and s.id != params.store}
    busy = set(in_flight)
    led = [r for r in regions if r.leader == params.store and r.id not in busy]
    led.sort(key=lambda r: (-r.bytes_per_second, r.id))
    moves: List[Move] = []
    for region in led:
        if len(moves) >= params.max_proposals:
            break
        targets = [p for p in region.peers if p in leaders]
        if not targets:
            continue
        to = min(targets, key=lambda p: (leaders[p], p))
        leaders[to] += 1
        moves.append(
            Move(
                region.id,
                to,
                f"evicting leaders from store {params.store}: store {to} is the healthy peer with the fewest leaders ({leaders[to] - 1})",
                region.bytes_per_second,
            )
        )
    return moves


def stranded(stores: Sequence[Store], regions: Sequence[Region], params: Params) -> List[int]:
    """Regions the store leads that have no healthy peer to take the lead (worth a warning)."""
    healthy = {s.id for s in stores if s.up and s.id != params.store}
    return [r.id for r in regions if r.leader == params.store and not any(p in healthy for p in r.peers)]
