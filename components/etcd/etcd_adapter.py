"""The etcd Subject adapter's logic, kept free of the component bindings so CPython can test it.

etcd has no central directory like PD: each member answers for itself. The operator grants one
HTTP endpoint per member (any name but `prometheus`), and the adapter asks every one of them for
`POST /v3/maintenance/status`; the member list (`POST /v3/cluster/member/list`) joins those
answers into one view. A member whose endpoint cannot be reached shows as `down`; one that
answers but has lost its leader shows as `disconnected`. The whole cluster is a single raft
group, exposed as region 1, led by the leader member.

Wire facts (etcd 3.4 gRPC gateway): every RPC is a POST with a JSON body; uint64 fields arrive
as decimal strings and zero values are omitted; member ids are decimal in JSON and hex in
metric labels; errors are `{"error","message","code"}` with a gRPC code.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

VERSION = "0.1.0"
PROMETHEUS = "prometheus"
#: The id of the cluster's one raft group.
REGION_ID = 1
#: How long `transfer-leader` watches for the new leader, in seconds.
TRANSFER_WAIT_S = 10.0
#: Pause between observations while waiting.
POLL_INTERVAL_S = 0.1
#: Per-request timeout for a member's status: a member that does not answer in this time is down.
STATUS_TIMEOUT_MS = 3000
#: The window of Prometheus rates.
RATE_WINDOW = "1m"
#: gRPC code etcd uses when it refuses an action in its current state (not leader, bad transferee).
FAILED_PRECONDITION = 9


class Failure(Exception):
    """A Subject error: `kind` is the contract's case (`unreachable`, `bad-response`, ...)."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


@dataclass
class Reply:
    """An HTTP answer as the host returned it."""

    status: int
    body: bytes


class Transport:
    """What the adapter needs from its host: the granted endpoints, HTTP, logs and a clock."""

    def endpoints(self) -> List[str]:
        raise NotImplementedError

    def post(self, endpoint: str, path: str, body: dict, timeout_ms: Optional[int] = None) -> Reply:
        """Raises `Failure` when the request could not be made (denied, unreachable, timeout)."""
        raise NotImplementedError

    def get(self, endpoint: str, path: str, query: List[Tuple[str, str]], timeout_ms: Optional[int] = None) -> Reply:
        raise NotImplementedError

    def log(self, level: str, message: str) -> None:
        pass

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def now(self) -> float:
        return time.monotonic()


# ---------------------------------------------------------------------------------------------
# Wire parsing


def u64(value, what: str) -> int:
    """A uint64 from the gateway's JSON: a decimal string (or a number); absent means zero."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise Failure("bad-response", f"{what} is a boolean, expected a uint64")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and value.isdigit():
        n = int(value)
    else:
        raise Failure("bad-response", f"{what} is {value!r}, expected a uint64 as a decimal string")
    if n < 0 or n >= 1 << 64:
        raise Failure("bad-response", f"{what} {n} does not fit in a uint64")
    return n


def parse_json(reply: Reply, what: str) -> dict:
    try:
        doc = json.loads(reply.body)
    except (ValueError, UnicodeDecodeError) as e:
        raise Failure("bad-response", f"{what}: the body is not JSON ({e}): {snippet(reply.body)}") from None
    if not isinstance(doc, dict):
        raise Failure("bad-response", f"{what}: expected a JSON object, got {snippet(reply.body)}")
    return doc


def snippet(body: bytes, limit: int = 200) -> str:
    text = body[:limit].decode("utf-8", "replace").strip()
    return repr(text + ("..." if len(body) > limit else ""))


@dataclass
class EtcdError:
    """An error body of the gRPC gateway."""

    code: int
    message: str


def parse_error(reply: Reply) -> Optional[EtcdError]:
    """The gateway's `{"error","message","code"}`, if the body is one."""
    try:
        doc = json.loads(reply.body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or "code" not in doc:
        return None
    message = doc.get("message") or doc.get("error") or ""
    code = doc.get("code")
    return EtcdError(code if isinstance(code, int) else -1, str(message))


def expect_ok(reply: Reply, what: str) -> dict:
    """The JSON object of a 200 answer; anything else is a `bad-response` naming what came back."""
    if reply.status == 200:
        return parse_json(reply, what)
    err = parse_error(reply)
    if err is not None:
        raise Failure("bad-response", f"{what}: etcd answered HTTP {reply.status}: {err.message} (gRPC code {err.code})")
    raise Failure("bad-response", f"{what}: HTTP {reply.status}: {snippet(reply.body)}")


@dataclass
class Status:
    """One member's answer to `/v3/maintenance/status`."""

    endpoint: str
    member_id: int
    cluster_id: int
    leader: Optional[int]
    version: str
    db_size: int
    db_size_in_use: int
    raft_term: int
    raft_index: int
    raft_applied_index: int
    is_learner: bool
    errors: List[str]


def parse_status(endpoint: str, doc: dict) -> Status:
    what = f"status from `{endpoint}`"
    header = doc.get("header")
    if not isinstance(header, dict) or "member_id" not in header:
        raise Failure("bad-response", f"{what} has no header.member_id; is this an etcd v3 endpoint?")
    leader = u64(doc.get("leader"), f"{what}: leader")
    errors = doc.get("errors") or []
    return Status(
        endpoint=endpoint,
        member_id=u64(header.get("member_id"), f"{what}: header.member_id"),
        cluster_id=u64(header.get("cluster_id"), f"{what}: header.cluster_id"),
        leader=leader or None,
        version=str(doc.get("version") or ""),
        db_size=u64(doc.get("dbSize"), f"{what}: dbSize"),
        db_size_in_use=u64(doc.get("dbSizeInUse"), f"{what}: dbSizeInUse"),
        raft_term=u64(doc.get("raftTerm"), f"{what}: raftTerm"),
        raft_index=u64(doc.get("raftIndex"), f"{what}: raftIndex"),
        raft_applied_index=u64(doc.get("raftAppliedIndex"), f"{what}: raftAppliedIndex"),
        is_learner=bool(doc.get("isLearner", False)),
        errors=[str(e) for e in errors] if isinstance(errors, list) else [str(errors)],
    )


@dataclass
class Member:
    """One entry of `/v3/cluster/member/list`."""

    id: int
    name: str
    peer_urls: List[str]
    client_urls: List[str]
    is_learner: bool


def parse_members(doc: dict, endpoint: str) -> List[Member]:
    what = f"member list from `{endpoint}`"
    raw = doc.get("members")
    if not isinstance(raw, list):
        raise Failure("bad-response", f"{what} has no `members` list")
    members = []
    for m in raw:
        if not isinstance(m, dict):
            raise Failure("bad-response", f"{what}: a member is not an object")
        members.append(
            Member(
                id=u64(m.get("ID"), f"{what}: ID"),
                name=str(m.get("name") or ""),
                peer_urls=[str(u) for u in m.get("peerURLs") or []],
                client_urls=[str(u) for u in m.get("clientURLs") or []],
                is_learner=bool(m.get("isLearner", False)),
            )
        )
    members.sort(key=lambda m: m.id)
    return members


def address_of(urls: List[str]) -> str:
    """`host:port` of the first URL (`http://10.0.0.1:2379` -> `10.0.0.1:2379`)."""
    if not urls:
        return ""
    url = urls[0]
    if "://" in url:
        url = url.split("://", 1)[1]
    return url.split("/", 1)[0]


# ---------------------------------------------------------------------------------------------
# The cluster as observed through every member endpoint


@dataclass
class MemberView:
    """A member joined with what its own endpoint said (if it answered)."""

    member: Member
    status: Optional[Status]
    state: str
    is_leader: bool
    problem: str = ""
    #: The backend quota (`--quota-backend-bytes`) its `/metrics` publish, when read.
    quota_bytes: Optional[int] = None

    def capacity(self) -> Tuple[int, int]:
        """(capacity, available) in bytes: the quota, less the db size it is compared with."""
        if self.quota_bytes is None or self.status is None:
            return 0, 0
        return self.quota_bytes, max(self.quota_bytes - self.status.db_size, 0)


QUOTA_METRIC = "etcd_server_quota_backend_bytes"


def parse_quota(body: bytes) -> Optional[int]:
    """`etcd_server_quota_backend_bytes` from a member's Prometheus text exposition; None when
    absent or not a byte count (NaN, infinite, negative, past u64)."""
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith(QUOTA_METRIC + " ") or line.startswith(QUOTA_METRIC + "{"):
            try:
                value = float(line.rsplit(None, 1)[1])
            except (IndexError, ValueError):
                return None
            return int(value) if math.isfinite(value) and 0 <= value < 2**64 else None
    return None


@dataclass
class Observation:
    members: List[MemberView]
    leader: Optional[int]
    cluster_id: int
    #: endpoint name -> why it did not answer
    failed: Dict[str, Failure] = field(default_factory=dict)

    def view(self, member_id: int) -> Optional[MemberView]:
        return next((v for v in self.members if v.member.id == member_id), None)


class Cluster:
    """The Subject operations for etcd over a `Transport`."""

    def __init__(self, transport: Transport):
        self.t = transport

    def member_endpoints(self) -> List[str]:
        names = [e for e in self.t.endpoints() if e != PROMETHEUS]
        if not names:
            raise Failure(
                "denied",
                "no etcd member endpoint is granted; add one [endpoints.<name>] section per member "
                "to the subject's operator.toml, or pass --endpoint etcd1=http://HOST:2379",
            )
        return names

    def observe(self) -> Observation:
        """Asks every member endpoint for its status, then one of them for the member list."""
        statuses: List[Status] = []
        failed: Dict[str, Failure] = {}
        for endpoint in self.member_endpoints():
            try:
                reply = self.t.post(endpoint, "/v3/maintenance/status", {}, STATUS_TIMEOUT_MS)
                statuses.append(parse_status(endpoint, expect_ok(reply, f"status from `{endpoint}`")))
            except Failure as f:
                failed[endpoint] = f
                self.t.log("debug", f"member endpoint `{endpoint}` did not answer: {f.message}")
        if not statuses:
            reasons = "; ".join(f"{e}: {f.message}" for e, f in failed.items())
            kinds = {f.kind for f in failed.values()}
            # One kind for all (all denied, all garbage) says what to fix; a mix is "unreachable".
            kind = kinds.pop() if len(kinds) == 1 else "unreachable"
            raise Failure(kind, f"no etcd member answered ({reasons})")

        clusters = {s.cluster_id for s in statuses}
        if len(clusters) > 1:
            ids = ", ".join(f"{s.endpoint}: {s.cluster_id}" for s in statuses)
            raise Failure("bad-response", f"the endpoints belong to different etcd clusters ({ids}); check the grants")

        # The leader as seen by the members with the newest term.
        with_leader = [s for s in statuses if s.leader]
        leader = max(with_leader, key=lambda s: s.raft_term).leader if with_leader else None

        # Ask for the member list where a leader is known (a partitioned member may lag).
        source = next((s for s in statuses if s.leader), statuses[0])
        members = parse_members(
            expect_ok(self.t.post(source.endpoint, "/v3/cluster/member/list", {}), f"member list from `{source.endpoint}`"),
            source.endpoint,
        )

        by_id = {s.member_id: s for s in statuses}
        unidentified = [m for m in members if m.id not in by_id]
        # Members nobody answered for: `down` when endpoints failed for them, otherwise unknown
        # (the member has no granted endpoint, so the adapter cannot ask it).
        silent_is_down = len(failed) >= len(unidentified) > 0
        views = []
        for m in members:
            s = by_id.get(m.id)
            if s is not None:
                state = "up" if s.leader else "disconnected"
                problem = "; ".join(s.errors)
            elif not m.name and not m.client_urls:
                state, problem = "unknown", "unstarted: added to the cluster but never started"
            elif silent_is_down:
                state, problem = "down", "its endpoint did not answer: " + "; ".join(f"{e}: {f.message}" for e, f in failed.items())
            else:
                state, problem = "unknown", "no granted endpoint answered for this member"
            views.append(MemberView(member=m, status=s, state=state, is_leader=m.id == leader, problem=problem))
        return Observation(members=views, leader=leader, cluster_id=source.cluster_id, failed=failed)

    # -- Subject operations --------------------------------------------------------------------

    def stores(self) -> List[MemberView]:
        obs = self.observe()
        for v in obs.members:
            if v.status is not None:
                v.quota_bytes = self.quota(v.status.endpoint)
        return obs.members

    def quota(self, endpoint: str) -> Optional[int]:
        """The member's backend quota from its own `/metrics`; None (logged) when unreadable.
        Bounded like a status request, so a member stalling here cannot spend the call."""
        try:
            reply = self.t.get(endpoint, "/metrics", [], STATUS_TIMEOUT_MS)
        except Failure as f:
            self.t.log("debug", f"quota of `{endpoint}` unavailable: {f.message}")
            return None
        if reply.status != 200:
            self.t.log("debug", f"quota of `{endpoint}` unavailable: /metrics answered {reply.status}")
            return None
        quota = parse_quota(reply.body)
        if quota is None:
            self.t.log("debug", f"`{endpoint}`/metrics has no {QUOTA_METRIC}")
        return quota

    def hot_write_regions(self) -> Tuple[Observation, Optional["WriteFlow"]]:
        """The one raft group's observation and its write flow (the caller handles limit 0)."""
        return self.observe(), self.write_flow()

    def write_flow(self) -> Optional["WriteFlow"]:
        """The cluster's write flow from Prometheus, or None (with a warning) when it cannot tell."""
        w = RATE_WINDOW
        try:
            prom = Prometheus(self.t)
            return WriteFlow(
                bytes_per_second=prom.scalar(f"max(rate(etcd_disk_wal_write_bytes_total[{w}]))"),
                keys_per_second=prom.scalar(
                    f"max(rate(etcd_mvcc_put_total[{w}])) + max(rate(etcd_mvcc_delete_total[{w}]))"
                ),
                written_bytes=prom.scalar(f"max(increase(etcd_disk_wal_write_bytes_total[{w}]))"),
                written_keys=prom.scalar(
                    f"max(increase(etcd_mvcc_put_total[{w}])) + max(increase(etcd_mvcc_delete_total[{w}]))"
                ),
                read_bytes=prom.scalar(f"sum(increase(etcd_network_client_grpc_sent_bytes_total[{w}]))"),
            )
        except Failure as f:
            self.t.log("warn", f"write rates unavailable, Prometheus did not answer: {f.message}")
            return None

    def metrics(self) -> Tuple[Observation, List["Sample"]]:
        obs = self.observe()
        samples: List[Sample] = []
        for v in obs.members:
            s = v.status
            if s is None:
                continue
            labels = member_labels(v.member)
            samples += [
                Sample("db-size-bytes", labels, s.db_size, "bytes"),
                Sample("db-size-in-use-bytes", labels, s.db_size_in_use, "bytes"),
                Sample("raft-term", labels, s.raft_term, "count"),
                Sample("raft-index", labels, s.raft_index, "count"),
                Sample("raft-applied-index", labels, s.raft_applied_index, "count"),
            ]
        try:
            samples += Prometheus(self.t).member_samples(obs)
        except Failure as f:
            self.t.log("warn", f"Prometheus metrics unavailable: {f.message}")
        return obs, samples

    def transfer_leader(self, region_id: int, to_member: int) -> "Transfer":
        if region_id != REGION_ID:
            raise Failure("not-found", f"etcd has a single raft group, region {REGION_ID}; there is no region {region_id}")
        obs = self.observe()
        target = obs.view(to_member)
        if target is None:
            known = ", ".join(f"{v.member.id} ({v.member.name or 'unstarted'})" for v in obs.members)
            raise Failure("not-found", f"no member with id {to_member}; members: {known}")
        if obs.leader is None:
            raise Failure("rejected", "the cluster has no leader now (etcdserver: no leader); retry once it has elected one")
        leader_view = obs.view(obs.leader)
        if leader_view is None or leader_view.status is None:
            raise Failure(
                "unreachable",
                f"the leader {obs.leader} has no granted endpoint that answers; transfer-leadership must be sent to the leader",
            )
        endpoint = leader_view.status.endpoint
        started = self.t.now()
        reply = self.t.post(endpoint, "/v3/maintenance/transfer-leadership", {"targetID": str(to_member)})
        if reply.status != 200:
            err = parse_error(reply)
            if err is None:
                raise Failure("bad-response", f"transfer-leadership: HTTP {reply.status}: {snippet(reply.body)}")
            raise Failure("rejected", f"{err.message} (gRPC code {err.code}, HTTP {reply.status})")
        # etcd answers once leadership has moved; confirm it from the members' own view.
        confirmed = False
        while True:
            try:
                if self.observe().leader == to_member:
                    confirmed = True
                    break
            except Failure as f:
                self.t.log("debug", f"observing the new leader: {f.message}")
            if self.t.now() - started >= TRANSFER_WAIT_S:
                break
            self.t.sleep(POLL_INTERVAL_S)
        waited_ms = int((self.t.now() - started) * 1000)
        return Transfer(region_id, obs.leader, to_member, confirmed, waited_ms)


def member_labels(m: Member) -> List[Tuple[str, str]]:
    return [("member", str(m.id)), ("name", m.name)]


@dataclass
class WriteFlow:
    bytes_per_second: Optional[float]
    keys_per_second: Optional[float]
    written_bytes: Optional[float]
    written_keys: Optional[float]
    read_bytes: Optional[float]


@dataclass
class Sample:
    name: str
    labels: List[Tuple[str, str]]
    value: float
    unit: str


@dataclass
class Transfer:
    region_id: int
    from_member: Optional[int]
    to_member: int
    confirmed: bool
    waited_ms: int


# ---------------------------------------------------------------------------------------------
# Prometheus


class Prometheus:
    """Instant queries against the `prometheus` endpoint (`GET /api/v1/query`)."""

    def __init__(self, transport: Transport):
        self.t = transport

    def query(self, promql: str) -> List[Tuple[Dict[str, str], float]]:
        reply = self.t.get(PROMETHEUS, "/api/v1/query", [("query", promql)])
        what = f"Prometheus query `{promql}`"
        doc = parse_json(reply, what)
        if doc.get("status") != "success":
            raise Failure("bad-response", f"{what}: {doc.get('errorType', 'error')}: {doc.get('error', snippet(reply.body))}")
        data = doc.get("data") or {}
        kind = data.get("resultType")
        result = data.get("result")
        if kind == "scalar":
            return [({}, sample_value(result, what))]
        if kind != "vector" or not isinstance(result, list):
            raise Failure("bad-response", f"{what}: expected a vector, got {kind!r}")
        out = []
        for item in result:
            if not isinstance(item, dict):
                raise Failure("bad-response", f"{what}: a result is not an object")
            labels = item.get("metric") or {}
            out.append(({str(k): str(v) for k, v in labels.items()}, sample_value(item.get("value"), what)))
        return out

    def scalar(self, promql: str) -> Optional[float]:
        """The single value of an aggregated query; None when there are no series yet."""
        rows = self.query(promql)
        return rows[0][1] if rows else None

    def member_samples(self, obs: Observation) -> List[Sample]:
        """Per-member etcd metrics, each labelled with the member it came from.

        Every query is joined with `etcd_server_id` (value 1, label `server_id` = hex member id)
        so a series names its member whatever address Prometheus scraped it at.
        """
        w = RATE_WINDOW
        by_hex = {format(v.member.id, "x"): v.member for v in obs.members}
        join = " * on(instance) group_left(server_id) etcd_server_id"
        queries = [
            ("has-leader", "etcd_server_has_leader", "count"),
            ("leader-changes-last-hour", "increase(etcd_server_leader_changes_seen_total[1h])", "count"),
            ("proposals-committed-per-second", f"rate(etcd_server_proposals_committed_total[{w}])", "1/s"),
            ("proposals-failed-per-second", f"rate(etcd_server_proposals_failed_total[{w}])", "1/s"),
            ("proposals-pending", "etcd_server_proposals_pending", "count"),
            ("wal-write-bytes-per-second", f"rate(etcd_disk_wal_write_bytes_total[{w}])", "bytes/s"),
            (
                "wal-fsync-p99-seconds",
                f"histogram_quantile(0.99, sum by (instance, le) (rate(etcd_disk_wal_fsync_duration_seconds_bucket[{w}])))",
                "seconds",
            ),
            (
                "backend-commit-p99-seconds",
                f"histogram_quantile(0.99, sum by (instance, le) (rate(etcd_disk_backend_commit_duration_seconds_bucket[{w}])))",
                "seconds",
            ),
            ("db-total-size-bytes", "etcd_mvcc_db_total_size_in_bytes", "bytes"),
            ("quota-backend-bytes", "etcd_server_quota_backend_bytes", "bytes"),
            ("keys", "etcd_debugging_mvcc_keys_total", "count"),
            (
                "client-requests-per-second",
                f'sum by (instance) (rate(grpc_server_started_total{{grpc_type="unary"}}[{w}]))',
                "1/s",
            ),
        ]
        samples = []
        for name, promql, unit in queries:
            for labels, value in self.query(f"({promql}){join}"):
                if value != value:  # NaN: a quantile over a window with no observations
                    continue
                samples.append(Sample(name, self.member_of(labels, by_hex), value, unit))
        return samples

    @staticmethod
    def member_of(labels: Dict[str, str], by_hex: Dict[str, Member]) -> List[Tuple[str, str]]:
        hex_id = labels.get("server_id", "")
        member = by_hex.get(hex_id.lower().lstrip("0") or "0")
        if member is not None:
            return member_labels(member)
        try:
            return [("member", str(int(hex_id, 16)))]
        except ValueError:
            return [("instance", labels.get("instance", "?"))]


def sample_value(pair, what: str) -> float:
    """The value of a `[timestamp, "value"]` pair (Prometheus sends numbers as strings)."""
    if not isinstance(pair, list) or len(pair) != 2:
        raise Failure("bad-response", f"{what}: a sample is not a [time, value] pair")
    try:
        return float(pair[1])
    except (TypeError, ValueError):
        raise Failure("bad-response", f"{what}: sample value {pair[1]!r} is not a number") from None

