"""Unit tests of the etcd adapter's logic on CPython, replaying bodies captured from etcd 3.4.23.

Run: python3 -m unittest discover -s components/etcd/tests
"""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import etcd_adapter as core  # noqa: E402

# Captured from a live three-member Debian etcd 3.4.23 (see the wire-format notes, section 4).
N1, N2, N3 = 5064449033280258446, 7283996576080651431, 375398913383814815
CLUSTER = "17119699770906828853"


def status(member, leader=N3, extra=None):
    doc = {
        "header": {"cluster_id": CLUSTER, "member_id": str(member), "revision": "1", "raft_term": "2"},
        "version": "3.4.23",
        "dbSize": "20480",
        "raftIndex": "9",
        "raftTerm": "2",
        "raftAppliedIndex": "9",
        "dbSizeInUse": "16384",
    }
    if leader is not None:
        doc["leader"] = str(leader)
    else:
        doc["errors"] = ["etcdserver: no leader"]
    doc.update(extra or {})
    return json.dumps(doc).encode()


MEMBER_LIST = (
    b'{"header":{"cluster_id":"17119699770906828853","member_id":"5064449033280258446","raft_term":"2"},'
    b'"members":[{"ID":"375398913383814815","name":"n3","peerURLs":["http://127.0.0.1:32380"],'
    b'"clientURLs":["http://127.0.0.1:32379"]},{"ID":"5064449033280258446","name":"n1","peerURLs":'
    b'["http://127.0.0.1:12380"],"clientURLs":["http://127.0.0.1:12379"]},{"ID":"7283996576080651431",'
    b'"name":"n2","peerURLs":["http://127.0.0.1:22380"],"clientURLs":["http://127.0.0.1:22379"]}]}'
)
NOT_LEADER = b'{"error":"etcdserver: not leader","message":"etcdserver: not leader","code":9}'
BAD_TRANSFEREE = b'{"error":"etcdserver: bad leader transferee","message":"etcdserver: bad leader transferee","code":9}'


class FakeHost(core.Transport):
    """Answers from a table of (endpoint, path) -> Reply | Failure | callable."""

    def __init__(self, routes, endpoints=("etcd1", "etcd2", "etcd3")):
        self.routes = dict(routes)
        self._endpoints = list(endpoints)
        self.sent = []
        self.logs = []
        self.clock = 0.0

    def endpoints(self):
        return self._endpoints + ["prometheus"]

    def post(self, endpoint, path, body, timeout_ms=None):
        self.sent.append((endpoint, path, body))
        return self._answer(endpoint, path)

    def get(self, endpoint, path, query, timeout_ms=None):
        self.sent.append((endpoint, path, dict(query)))
        return self._answer(endpoint, path, dict(query).get("query"))

    def _answer(self, endpoint, path, query=None):
        key = (endpoint, path) if query is None else (endpoint, path, query)
        answer = self.routes.get(key, self.routes.get((endpoint, path)))
        if answer is None:
            raise core.Failure("unreachable", f"{endpoint}: connection refused")
        if callable(answer):
            answer = answer()
        if isinstance(answer, core.Failure):
            raise answer
        return answer

    def log(self, level, message):
        self.logs.append((level, message))

    def sleep(self, seconds):
        self.clock += seconds

    def now(self):
        return self.clock


def healthy_routes():
    return {
        ("etcd1", "/v3/maintenance/status"): core.Reply(200, status(N1)),
        ("etcd2", "/v3/maintenance/status"): core.Reply(200, status(N2)),
        ("etcd3", "/v3/maintenance/status"): core.Reply(200, status(N3)),
        ("etcd1", "/v3/cluster/member/list"): core.Reply(200, MEMBER_LIST),
        ("etcd2", "/v3/cluster/member/list"): core.Reply(200, MEMBER_LIST),
        ("etcd3", "/v3/cluster/member/list"): core.Reply(200, MEMBER_LIST),
    }


class Stores(unittest.TestCase):
    def test_capacity_is_the_quota_each_member_publishes_and_available_what_its_db_leaves(self):
        routes = healthy_routes()
        metrics = b"# HELP etcd_server_quota_backend_bytes Current backend storage quota size in bytes.\n" \
            b"# TYPE etcd_server_quota_backend_bytes gauge\netcd_server_quota_backend_bytes 2.147483648e+09\n"
        routes[("etcd1", "/metrics")] = core.Reply(200, metrics)
        routes[("etcd2", "/metrics")] = core.Reply(200, b"other_metric 1\n")
        # etcd3's /metrics is refused: capacity stays unknown (0), the rest still answers.
        views = {v.member.id: v for v in core.Cluster(FakeHost(routes)).stores()}
        self.assertEqual(views[N1].capacity(), (2147483648, 2147483648 - 20480))
        self.assertEqual(views[N2].capacity(), (0, 0))
        self.assertEqual(views[N3].capacity(), (0, 0))

    def test_a_quota_that_is_not_a_byte_count_is_unknown_not_a_failure(self):
        for value in [b"+Inf", b"NaN", b"-1", b"1e30", b"x"]:
            self.assertIsNone(core.parse_quota(b"etcd_server_quota_backend_bytes " + value + b"\n"), value)
        self.assertEqual(core.parse_quota(b'etcd_server_quota_backend_bytes{a="b"} 8\n'), 8)

    def test_three_members_with_exactly_one_leader_and_ids_beyond_2_53(self):
        views = core.Cluster(FakeHost(healthy_routes())).stores()
        self.assertEqual([v.member.id for v in views], sorted([N1, N2, N3]))
        self.assertEqual([v.member.id for v in views if v.is_leader], [N3])
        self.assertTrue(all(v.state == "up" for v in views))
        n1 = next(v for v in views if v.member.id == N1)
        self.assertEqual(n1.member.name, "n1")
        self.assertEqual(core.address_of(n1.member.client_urls), "127.0.0.1:12379")
        self.assertEqual(n1.status.db_size, 20480)
        self.assertEqual(n1.status.version, "3.4.23")
        self.assertGreater(N1, 2**53)

    def test_a_member_whose_endpoint_is_refused_is_down_and_the_rest_still_answer(self):
        routes = healthy_routes()
        del routes[("etcd2", "/v3/maintenance/status")]
        host = FakeHost(routes)
        views = {v.member.id: v for v in core.Cluster(host).stores()}
        self.assertEqual(views[N2].state, "down")
        self.assertIn("connection refused", views[N2].problem)
        self.assertEqual(views[N1].state, "up")
        self.assertTrue(views[N3].is_leader)

    def test_a_member_that_lost_its_leader_is_disconnected(self):
        routes = healthy_routes()
        routes[("etcd1", "/v3/maintenance/status")] = core.Reply(200, status(N1, leader=None))
        views = {v.member.id: v for v in core.Cluster(FakeHost(routes)).stores()}
        self.assertEqual(views[N1].state, "disconnected")
        self.assertIn("no leader", views[N1].problem)
        self.assertTrue(views[N3].is_leader)

    def test_the_member_list_comes_from_a_member_that_knows_the_leader(self):
        routes = healthy_routes()
        routes[("etcd1", "/v3/maintenance/status")] = core.Reply(200, status(N1, leader=None))
        host = FakeHost(routes)
        core.Cluster(host).stores()
        lists = [e for e, p, _ in host.sent if p == "/v3/cluster/member/list"]
        self.assertEqual(lists, ["etcd2"])

    def test_a_member_without_a_granted_endpoint_is_unknown(self):
        routes = healthy_routes()
        host = FakeHost(routes, endpoints=("etcd1", "etcd3"))
        views = {v.member.id: v for v in core.Cluster(host).stores()}
        self.assertEqual(views[N2].state, "unknown")

    def test_no_member_answering_is_unreachable_naming_each_endpoint(self):
        with self.assertRaises(core.Failure) as cm:
            core.Cluster(FakeHost({})).stores()
        self.assertEqual(cm.exception.kind, "unreachable")
        for e in ("etcd1", "etcd2", "etcd3"):
            self.assertIn(e, cm.exception.message)

    def test_garbage_from_every_member_is_a_bad_response(self):
        routes = {(e, "/v3/maintenance/status"): core.Reply(200, b"<html>proxy</html>") for e in ("etcd1", "etcd2", "etcd3")}
        with self.assertRaises(core.Failure) as cm:
            core.Cluster(FakeHost(routes)).stores()
        self.assertEqual(cm.exception.kind, "bad-response")
        self.assertIn("not JSON", cm.exception.message)

    def test_no_member_endpoint_granted_is_denied_with_what_to_add(self):
        with self.assertRaises(core.Failure) as cm:
            core.Cluster(FakeHost({}, endpoints=())).stores()
        self.assertEqual(cm.exception.kind, "denied")
        self.assertIn("--endpoint", cm.exception.message)

    def test_endpoints_of_two_clusters_are_refused(self):
        routes = healthy_routes()
        other = json.loads(status(N2))
        other["header"]["cluster_id"] = "42"
        routes[("etcd2", "/v3/maintenance/status")] = core.Reply(200, json.dumps(other).encode())
        with self.assertRaises(core.Failure) as cm:
            core.Cluster(FakeHost(routes)).stores()
        self.assertIn("different etcd clusters", cm.exception.message)

    def test_uint64_fields_must_be_decimal_strings_or_integers(self):
        self.assertEqual(core.u64("18446744073709551615", "x"), 2**64 - 1)
        self.assertEqual(core.u64(None, "x"), 0)
        self.assertEqual(core.u64(7, "x"), 7)
        for bad in ("1e3", "-1", 1.5, True, "18446744073709551616"):
            with self.assertRaises(core.Failure):
                core.u64(bad, "x")

    def test_omitted_zero_fields_read_as_zero(self):
        s = core.parse_status("etcd1", {"header": {"member_id": "1"}})
        self.assertEqual((s.db_size, s.raft_index, s.leader, s.cluster_id), (0, 0, None, 0))


class TransferLeader(unittest.TestCase):
    def test_is_sent_to_the_leader_with_the_target_as_a_string_and_confirmed(self):
        routes = healthy_routes()
        moved = {"done": False}

        def transfer():
            moved["done"] = True
            return core.Reply(200, b"{}")

        def status_of(member):
            return lambda: core.Reply(200, status(member, leader=N1 if moved["done"] else N3))

        routes[("etcd3", "/v3/maintenance/transfer-leadership")] = transfer
        for e, m in (("etcd1", N1), ("etcd2", N2), ("etcd3", N3)):
            routes[(e, "/v3/maintenance/status")] = status_of(m)
        host = FakeHost(routes)
        t = core.Cluster(host).transfer_leader(1, N1)
        self.assertTrue(t.confirmed)
        self.assertEqual((t.from_member, t.to_member), (N3, N1))
        sent = [(e, b) for e, p, b in host.sent if p.endswith("transfer-leadership")]
        self.assertEqual(sent, [("etcd3", {"targetID": str(N1)})])

    def test_a_refusal_with_grpc_code_9_is_rejected_with_etcds_message_on_412_or_400(self):
        for http_status in (412, 400):
            routes = healthy_routes()
            routes[("etcd3", "/v3/maintenance/transfer-leadership")] = core.Reply(http_status, BAD_TRANSFEREE)
            with self.assertRaises(core.Failure) as cm:
                core.Cluster(FakeHost(routes)).transfer_leader(1, N2)
            self.assertEqual(cm.exception.kind, "rejected")
            self.assertIn("etcdserver: bad leader transferee", cm.exception.message)

    def test_a_leader_that_changed_meanwhile_answers_not_leader_which_is_rejected(self):
        routes = healthy_routes()
        routes[("etcd3", "/v3/maintenance/transfer-leadership")] = core.Reply(412, NOT_LEADER)
        with self.assertRaises(core.Failure) as cm:
            core.Cluster(FakeHost(routes)).transfer_leader(1, N1)
        self.assertEqual(cm.exception.kind, "rejected")
        self.assertIn("etcdserver: not leader", cm.exception.message)
        self.assertIn("gRPC code 9", cm.exception.message)

    def test_an_unknown_member_is_not_found_and_lists_the_members(self):
        with self.assertRaises(core.Failure) as cm:
            core.Cluster(FakeHost(healthy_routes())).transfer_leader(1, 12345)
        self.assertEqual(cm.exception.kind, "not-found")
        self.assertIn(str(N1), cm.exception.message)

    def test_a_region_other_than_the_one_raft_group_is_not_found(self):
        with self.assertRaises(core.Failure) as cm:
            core.Cluster(FakeHost(healthy_routes())).transfer_leader(7, N1)
        self.assertEqual(cm.exception.kind, "not-found")

    def test_an_unconfirmed_transfer_stops_watching_at_the_deadline(self):
        routes = healthy_routes()
        routes[("etcd3", "/v3/maintenance/transfer-leadership")] = core.Reply(200, b"{}")
        t = core.Cluster(FakeHost(routes)).transfer_leader(1, N1)
        self.assertFalse(t.confirmed)
        self.assertGreaterEqual(t.waited_ms, core.TRANSFER_WAIT_S * 1000)

    def test_without_a_leader_the_transfer_is_rejected(self):
        routes = {k: v for k, v in healthy_routes().items()}
        for e, m in (("etcd1", N1), ("etcd2", N2), ("etcd3", N3)):
            routes[(e, "/v3/maintenance/status")] = core.Reply(200, status(m, leader=None))
        with self.assertRaises(core.Failure) as cm:
            core.Cluster(FakeHost(routes)).transfer_leader(1, N1)
        self.assertEqual(cm.exception.kind, "rejected")


def vector(*rows):
    return json.dumps(
        {"status": "success", "data": {"resultType": "vector", "result": [{"metric": m, "value": [1700000000.0, v]} for m, v in rows]}}
    ).encode()


class Prometheus(unittest.TestCase):
    def test_write_flow_comes_from_the_wal_and_mvcc_counters(self):
        routes = healthy_routes()
        routes[("prometheus", "/api/v1/query")] = core.Reply(200, vector(({}, "1234.5")))
        obs, flow = core.Cluster(FakeHost(routes)).hot_write_regions()
        self.assertEqual(obs.leader, N3)
        self.assertEqual(flow.bytes_per_second, 1234.5)

    def test_prometheus_down_leaves_rates_unknown_with_a_warning(self):
        host = FakeHost(healthy_routes())
        obs, flow = core.Cluster(host).hot_write_regions()
        self.assertIsNone(flow)
        self.assertTrue(any(level == "warn" and "Prometheus" in m for level, m in host.logs))

    def test_member_samples_are_labelled_by_member_from_the_hex_server_id(self):
        routes = healthy_routes()
        routes[("prometheus", "/api/v1/query")] = core.Reply(
            200, vector(({"instance": "etcd1:2379", "server_id": format(N1, "x")}, "1"))
        )
        obs, samples = core.Cluster(FakeHost(routes)).metrics()
        has_leader = [s for s in samples if s.name == "has-leader"]
        self.assertEqual(has_leader[0].labels, [("member", str(N1)), ("name", "n1")])
        self.assertTrue(any(s.name == "db-size-bytes" and s.value == 20480 for s in samples))

    def test_a_prometheus_error_is_a_bad_response_with_its_message(self):
        host = FakeHost(
            {("prometheus", "/api/v1/query"): core.Reply(400, b'{"status":"error","errorType":"bad_data","error":"parse error"}')}
        )
        with self.assertRaises(core.Failure) as cm:
            core.Prometheus(host).query("up{")
        self.assertEqual(cm.exception.kind, "bad-response")
        self.assertIn("parse error", cm.exception.message)


if __name__ == "__main__":
    unittest.main()
