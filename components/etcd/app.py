"""The etcd Subject adapter as a component: the `subject` export over the host's `http` import.

componentize-py generates `wit_world` from `wit/` (world `subject-adapter`); this module only
converts between those bindings and `etcd_adapter`, where the logic lives.
"""

import json
from typing import List, Optional, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import http, log, types

import etcd_adapter as core

_LEVELS = {
    "trace": log.Level.TRACE,
    "debug": log.Level.DEBUG,
    "info": log.Level.INFO,
    "warn": log.Level.WARN,
    "error": log.Level.ERROR,
}

_ERRORS = {
    "unreachable": types.SubjectError_Unreachable,
    "denied": types.SubjectError_Denied,
    "bad-response": types.SubjectError_BadResponse,
    "not-found": types.SubjectError_NotFound,
    "rejected": types.SubjectError_Rejected,
    "unsupported": types.SubjectError_Unsupported,
}


class HostTransport(core.Transport):
    """`core.Transport` on the host imports: every request is checked against the grants."""

    def endpoints(self) -> List[str]:
        return http.endpoints()

    def post(self, endpoint: str, path: str, body: dict, timeout_ms: Optional[int] = None) -> core.Reply:
        data = json.dumps(body).encode()
        headers = [http.Header("content-type", "application/json")]
        return self._send(http.Request(endpoint, http.Method.POST, path, [], headers, data, timeout_ms))

    def get(self, endpoint: str, path: str, query: List[Tuple[str, str]], timeout_ms: Optional[int] = None) -> core.Reply:
        return self._send(http.Request(endpoint, http.Method.GET, path, query, [], None, timeout_ms))

    def _send(self, request: http.Request) -> core.Reply:
        where = f"{request.method.name} {request.endpoint}{request.path}"
        try:
            response = http.send(request)
        except Err as e:
            err = e.value
            if isinstance(err, http.HttpError_Denied):
                raise core.Failure("denied", f"{where}: {err.value.reason}; {err.value.hint}") from None
            if isinstance(err, http.HttpError_TooLarge):
                raise core.Failure("bad-response", f"{where}: the answer exceeds the host's limit of {err.value} bytes") from None
            if isinstance(err, http.HttpError_InvalidRequest):
                raise core.Failure("bad-response", f"{where}: the host refused the request as malformed: {err.value}") from None
            raise core.Failure("unreachable", f"{where}: {err.value}") from None
        return core.Reply(response.status, bytes(response.body))

    def log(self, level: str, message: str) -> None:
        log.log(_LEVELS.get(level, log.Level.INFO), message)


def _run(operation):
    """Runs an operation, turning a `core.Failure` into the contract's `subject-error`."""
    try:
        return operation(core.Cluster(HostTransport()))
    except core.Failure as f:
        raise Err(_ERRORS.get(f.kind, types.SubjectError_BadResponse)(f.message)) from None


def _store(v: core.MemberView) -> types.Store:
    m, s = v.member, v.status
    labels = [types.Label("name", m.name)] if m.name else []
    if m.is_learner:
        labels.append(types.Label("learner", "true"))
    details = [
        types.Label("member-id-hex", format(m.id, "x")),
        types.Label("peer-urls", ",".join(m.peer_urls)),
        types.Label("client-urls", ",".join(m.client_urls)),
        types.Label("leader", "true" if v.is_leader else "false"),
    ]
    if s is not None:
        details += [
            types.Label("endpoint", s.endpoint),
            types.Label("db-size-in-use", str(s.db_size_in_use)),
            types.Label("raft-term", str(s.raft_term)),
            types.Label("raft-index", str(s.raft_index)),
            types.Label("raft-applied-index", str(s.raft_applied_index)),
        ]
    if v.problem:
        details.append(types.Label("problem", v.problem))
    return types.Store(
        id=m.id,
        address=core.address_of(m.client_urls),
        state=types.StoreState[v.state.upper()],
        labels=labels,
        version=s.version if s else "",
        capacity_bytes=v.capacity()[0],
        available_bytes=v.capacity()[1],
        used_bytes=s.db_size if s else 0,
        leader_count=1 if v.is_leader else 0,
        region_count=1,
        details=details,
    )


def _count(value: Optional[float]) -> int:
    return int(value) if value is not None and value == value and value > 0 else 0


class Subject(exports.Subject):
    def describe(self) -> types.SubjectInfo:
        return types.SubjectInfo(
            name="etcd",
            version=core.VERSION,
            description="etcd 3.4+ through each member's gRPC gateway and Prometheus (written in Python)",
            actions=["stores", "hot-write-regions", "metrics", "transfer-leader"],
        )

    def get_stores(self) -> List[types.Store]:
        return [_store(v) for v in _run(lambda c: c.stores())]

    def get_hot_write_regions(self, limit: int) -> List[types.Region]:
        if limit == 0:
            return []
        obs, flow = _run(lambda c: c.hot_write_regions())
        leader = obs.view(obs.leader) if obs.leader else None
        size = leader.status.db_size if leader and leader.status else max((v.status.db_size for v in obs.members if v.status), default=0)
        return [
            types.Region(
                id=core.REGION_ID,
                leader_store_id=obs.leader,
                peer_store_ids=[v.member.id for v in obs.members],
                written_bytes=_count(flow.written_bytes) if flow else 0,
                written_keys=_count(flow.written_keys) if flow else 0,
                read_bytes=_count(flow.read_bytes) if flow else 0,
                read_keys=0,
                approximate_size_bytes=size,
                write_bytes_per_second=flow.bytes_per_second if flow else None,
                write_keys_per_second=flow.keys_per_second if flow else None,
            )
        ]

    def get_cluster_metrics(self) -> types.ClusterMetrics:
        obs, samples = _run(lambda c: c.metrics())
        return types.ClusterMetrics(
            store_count=len(obs.members),
            region_count=1,
            leaders_per_store=[types.StoreCount(v.member.id, 1 if v.is_leader else 0) for v in obs.members],
            samples=[
                types.MetricSample(s.name, [types.Label(k, v) for k, v in s.labels], float(s.value), s.unit)
                for s in samples
            ],
        )

    def transfer_leader(self, region_id: int, to_store_id: int) -> types.LeaderTransfer:
        t = _run(lambda c: c.transfer_leader(region_id, to_store_id))
        return types.LeaderTransfer(t.region_id, t.from_member, t.to_member, t.confirmed, t.waited_ms)
