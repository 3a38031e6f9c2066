"""`evict-leader` as a policy component: the `policy` export over the bindings componentize-py
generates from `wit/policy` (world `policy-component`). The decision lives in `evict`; this
module only converts between the bindings and its plain types.
"""

from typing import List, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import policy
from wit_world.imports import log, types

import evict

VERSION = "0.1.0"


def _region_of(action: policy.Action) -> int:
    return action.value.region_id


class Policy(exports.Policy):
    def describe(self) -> policy.PolicyInfo:
        return policy.PolicyInfo(
            name="evict-leader",
            version=VERSION,
            description="moves every leader off one store to healthy peers and keeps them off (written in Python)",
            params=[policy.ParamSpec(name, default, meaning) for name, default, meaning in evict.PARAMS],
        )

    def decide(self, observation: policy.Observation, params: List[Tuple[str, str]]) -> List[policy.Proposal]:
        try:
            parsed = evict.parse_params(params)
            # A TiFlash store (`engine=tiflash`) holds learners only and never leads.
            stores = [
                evict.Store(
                    s.id,
                    s.state == types.StoreState.UP and not any(l.key == "engine" and l.value == "tiflash" for l in s.labels),
                    s.leader_count,
                )
                for s in observation.stores
            ]
            regions = [
                evict.Region(
                    r.id,
                    r.leader_store_id,
                    tuple(r.peer_store_ids),
                    r.write_bytes_per_second if r.write_bytes_per_second is not None else 0.0,
                )
                for r in observation.hot_write_regions
            ]
            in_flight = [_region_of(f.action) for f in observation.in_flight]
            in_flight += [
                _region_of(o.action)
                for o in observation.recent
                if o.kind == policy.OutcomeKind.FAILED and observation.now_ms - o.at_ms < parsed.retry_ms
            ]
            moves = evict.decide(stores, regions, in_flight, parsed)
        except evict.ParamError as e:
            raise Err(policy.PolicyError_InvalidParam(str(e))) from None
        except evict.DataError as e:
            raise Err(policy.PolicyError_InsufficientData(str(e))) from None
        stuck = evict.stranded(stores, regions, parsed)
        if stuck:
            shown = ", ".join(str(r) for r in stuck[:8])
            log.log(log.Level.WARN, f"store {parsed.store} leads region(s) {shown} with no healthy peer to move to")
        return [
            policy.Proposal(
                policy.Action_TransferLeader(policy.LeaderMove(m.region_id, m.to_store_id)), m.reason, m.score
            )
            for m in moves
        ]
