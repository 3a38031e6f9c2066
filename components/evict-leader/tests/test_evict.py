"""Unit tests of the evict-leader decision (plain Python, no wasm):
python3 -m unittest discover -s components/evict-leader/tests"""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import evict  # noqa: E402
from evict import Params, Region, Store  # noqa: E402


def stores(*spec):
    """(id, up, leader_count) triples."""
    return [Store(i, up, n) for i, up, n in spec]


class ParseParams(unittest.TestCase):
    def test_store_is_required_and_must_be_an_id(self):
        with self.assertRaisesRegex(evict.ParamError, "store is required"):
            evict.parse_params([])
        with self.assertRaisesRegex(evict.ParamError, "store must be a store id"):
            evict.parse_params([("store", "tikv1")])
        with self.assertRaisesRegex(evict.ParamError, "store must be a store id"):
            evict.parse_params([("store", str(1 << 64))])
        self.assertEqual(evict.parse_params([("store", "7")]), Params(7, 4, 60000))
        with self.assertRaisesRegex(evict.ParamError, "store must be a store id"):
            evict.parse_params([("store", "\u00b2")])

    def test_unknown_parameters_are_named(self):
        with self.assertRaisesRegex(evict.ParamError, "unknown parameter `tolerance`; this policy takes store, max-proposals, retry-ms"):
            evict.parse_params([("store", "1"), ("tolerance", "1.1")])

    def test_max_proposals_is_a_whole_number(self):
        self.assertEqual(evict.parse_params([("store", "1"), ("max-proposals", "9")]).max_proposals, 9)
        with self.assertRaisesRegex(evict.ParamError, "max-proposals"):
            evict.parse_params([("store", "1"), ("max-proposals", "-1")])


class Decide(unittest.TestCase):
    def test_every_leader_on_the_store_moves_to_the_healthy_peer_with_fewest_leaders(self):
        s = stores((1, True, 3), (2, True, 5), (3, True, 0))
        regions = [Region(10, 1, (1, 2, 3), 5.0), Region(11, 1, (1, 2, 3), 9.0), Region(12, 1, (1, 2), 1.0),
                   Region(13, 2, (1, 2, 3), 50.0)]
        moves = evict.decide(s, regions, [], Params(1, 10))
        # Hottest first; store 3 takes the first two (0, then 1 leader), then region 12 can only go to 2.
        self.assertEqual([(m.region_id, m.to_store_id) for m in moves], [(11, 3), (10, 3), (12, 2)])
        self.assertIn("evicting leaders from store 1", moves[0].reason)
        self.assertEqual(moves[0].score, 9.0)

    def test_targets_are_up_peers_only_and_stranded_regions_are_reported(self):
        s = stores((1, True, 2), (2, False, 0), (3, True, 9))
        regions = [Region(10, 1, (1, 2), 1.0), Region(11, 1, (1, 2, 3), 1.0)]
        moves = evict.decide(s, regions, [], Params(1, 10))
        self.assertEqual([(m.region_id, m.to_store_id) for m in moves], [(11, 3)])
        self.assertEqual(evict.stranded(s, regions, Params(1, 10)), [10])

    def test_in_flight_regions_wait_and_the_count_is_capped(self):
        s = stores((1, True, 5), (2, True, 0))
        regions = [Region(i, 1, (1, 2), float(i)) for i in range(10, 20)]
        moves = evict.decide(s, regions, [19, 18], Params(1, 3))
        self.assertEqual([m.region_id for m in moves], [17, 16, 15])

    def test_nothing_to_do_once_the_store_leads_nothing(self):
        s = stores((1, True, 0), (2, True, 4))
        self.assertEqual(evict.decide(s, [Region(10, 2, (1, 2), 1.0)], [], Params(1, 4)), [])

    def test_a_store_not_in_the_cluster_is_named(self):
        with self.assertRaisesRegex(evict.DataError, r"store 9 is not in this cluster \(stores: 1, 2\)"):
            evict.decide(stores((2, True, 0), (1, True, 0)), [], [], Params(9, 4))

    def test_the_same_input_gives_the_same_moves(self):
        s = stores((1, True, 1), (2, True, 1), (3, True, 1))
        regions = [Region(i, 1, (1, 2, 3), 1.0) for i in range(30)]
        self.assertEqual(evict.decide(s, regions, [], Params(1, 30)), evict.decide(s, regions, [], Params(1, 30)))


if __name__ == "__main__":
    unittest.main()
