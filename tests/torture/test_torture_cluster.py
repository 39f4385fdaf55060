"""Cluster torture: a PFS over several node images, all operations, with and without
device faults on a minority of the nodes."""
import pytest

from pyh2.torture import Config, run_ops
from pyh2.torture.faults import FaultPlan


@pytest.mark.parametrize("nodes", [2, 3])
def test_all_ops_over_nodes_match_the_model(run_generated, nodes):
    run = run_generated(Config(seed=40 + nodes, nodes=nodes), 300)
    assert run.ops >= 290 and run.flushes > 5
    assert run.result == {"resynced": [], "damaged": []}


@pytest.mark.parametrize("nodes,seed", [(3, 51), (3, 54), (5, 54)])
def test_minority_faults_lose_no_flush(run_generated, nodes, seed):
    """Faults on a minority, crash points on node 0: every op succeeds, reads match the
    model, nodes that fell out are resynced at reopen; at the end the faulted nodes are
    fsck clean, then resynced (scrubbed), and every node holds the last flush."""
    run = run_generated(Config(seed=seed, nodes=nodes, crash=True, faults=True), 300)
    assert run.ops >= 290 and run.crash_points > 0 and run.faults_injected > 0
    assert run.resyncs > 0 and len(run.result["resynced"]) <= (nodes - 1) // 2
    assert 0 not in run.result["resynced"]


@pytest.mark.parametrize("nodes,faulty", [(1, 1), (2, 1), (3, 1), (5, 2)])
def test_faults_only_hit_a_minority(nodes, faulty):
    plan = FaultPlan(9, nodes)
    assert len(plan.faulty) == faulty and all(0 <= n < nodes for n in plan.faulty)
    assert 0 not in FaultPlan(9, nodes, spare=0).faulty or nodes == 1


def test_bulkfree_with_a_fault_armed_on_a_node_keeps_it_in(tmp_path):
    # the fault never fires: the node takes part in bulkfree and every flush
    ops = [("fault", 2, "corrupt", 27, 1.0, 1, 6534189678562749639),
           ("mkdir", "/d760", 0o1777), ("bulkfree",),
           ("symlink", "tttttttttttttttttttx", "/d760/s763"), ("flush",),
           ("symlink", "x", "/s993")]
    run = run_ops(tmp_path, Config(seed=1130513683, nodes=3, faults=True), ops)
    assert run.faults_injected == 0 and run.result == {"resynced": [], "damaged": []}


@pytest.mark.parametrize("ops", [
    [("fault", 1, "write", 0, 1.0, 0, 7), ("create", "/b", 3000, 2, 0o644), ("flush",)],
    [("fault", 0, "disconnect", 0, 1.0, 0, 7), ("read", "/a", 0, 70000),
     ("expect", "EEXIST", ("create", "/a", 0, 0, 0o644))],
], ids=["flush", "expect"])
def test_two_nodes_go_on_after_a_fault_took_the_quorum(tmp_path, ops):
    # one node of two is no minority: its failure costs the quorum, so an op fails
    # cleanly; the faulted node must be fsck clean and the run goes on over a copy of
    # the healthy one, which holds the last flush
    ops = [("create", "/a", 70000, 1, 0o644), ("flush",)] + ops + \
          [("clear",), ("create", "/c", 10, 3, 0o644), ("flush",)]
    run = run_ops(tmp_path, Config(seed=5, nodes=2, faults=True), ops)
    assert run.recoveries == 1 and run.result == {"resynced": [], "damaged": []}
    assert run.model.exists("/c")


def test_two_nodes_finish_after_a_fault_self_heal_absorbed(tmp_path):
    # a corrupt read on node 0 is served by node 1 and healed: the quorum holds, node 0
    # counts as faulted, and the end cannot scrub it (one node of two is no quorum
    # without it): the run ends on each node's exact check instead of failing there
    ops = [("create", "/a", 70000, 1, 0o644), ("flush",),
           ("fault", 0, "corrupt", 0, 1.0, 1, 7), ("read", "/a", 0, 70000),
           ("clear",), ("create", "/c", 10, 3, 0o644), ("flush",)]
    run = run_ops(tmp_path, Config(seed=5, nodes=2, faults=True), ops)
    assert run.faults_injected == 1 and run.recoveries == 0
    assert run.result == {"resynced": [0], "damaged": []} and run.model.exists("/c")


def test_a_resynced_node_takes_every_later_change(tmp_path):
    # a resync lays a node's blocks out its own way; the flush then collapsing an
    # indirect block there only must not stamp the directory above with a new
    # modify_tid, which would outvote the node for it and skip it in the link
    LONG = ("/d467/d133/"
            "hhhfainfkhhkpbpcofamohhfpnkfogbapfehkoefgpkeedkomflofgcekhnbbchk"
            "agieakpnibjhjielagpbbpebpolipfgmnmkcalhjghglagjoekgbjdhipmniiodo")
    ops = [
        ('create', '/f69', 0, 297798613, 493),
        ('rename', '/f69', '/f287'),
        ('mkdir', '/d467', 493),
        ('mkdir', '/d467/d724', 493),
        ('mkdir', '/d467/d133', 1023),
        ('create', '/d467/d724/f388', 356, 704986810, 420),
        ('mkdir', '/d467/d133/d960', 448),
        ('create', '/d467/d133/f709', 5120, 22748090, 420),
        ('rename', '/d467/d724', '/d467/d680'),
        ('create', '/d467/d133/f176', 45662, 25582645, 493),
        ('link', '/f287', '/d467/d133/h294'),
        ('link', '/d467/d680/f388', LONG),
        ('mkdir', '/d467/d133/d471', 448),
        ('mkdir', '/d467/d133/d960/d186', 1023),
        ('rename', LONG, '/d467/d133/h444'),
        ('flush',),
        ('rename', '/d467/d133/h294', '/d467/d133/d960/d186/h945'),
        ('fault', 2, 'write', 1, 1.0, 1, 7072998990248887417),
        ('symlink', 'tttttttttttttttttttx', '/d467/d680/s126'),
        ('rename', '/d467/d133/d471', '/d467/d133/d412'),
        ('rename', '/d467/d133/h444', '/d467/d133/d960/d186/h309'),
        ('write', '/d467/d680/f388', 494220, 43077, 127218468),
        ('create', '/d467/d680/f130', 86487, 1000550448, 493),
        ('create', '/d467/d133/d412/f728', 99097, 70869572, 420),
        ('rename', '/d467/d133/d412/f728', '/d467/d680/f500'),
        ('truncate', '/d467/d133/d960/d186/h309', 81920),
        ('bulkfree',),
        ('reopen',),
        ('flush',),
        ('link', '/d467/d680/f500', '/d467/d133/h217'),
    ]
    # resynced at the reopen, not by a sync thread before it
    run = run_ops(tmp_path, Config(seed=645465993, nodes=5, faults=True, sync_threads=False),
                  ops)
    assert run.faults_injected and run.result == {"resynced": [], "damaged": []}
