"""Cluster torture: a PFS over several node images."""
import pytest

from harness.torture import Config, run_ops
from harness.torture.faults import FaultPlan


@pytest.mark.parametrize("nodes", [2, 3])
def test_namespace_ops_over_nodes_match_the_model(run_generated, nodes):
    # file data writes over several nodes are not yet right in the core (see README)
    run = run_generated(Config(seed=40 + nodes, nodes=nodes), 200,
                        weights={"write": 0, "truncate": 0})
    assert run.ops >= 190 and run.result == {"diverged_nodes": []}


@pytest.mark.parametrize("nodes,faulty", [(1, 1), (2, 1), (3, 1), (5, 2)])
def test_faults_only_hit_a_minority(nodes, faulty):
    plan = FaultPlan(9, nodes)
    assert len(plan.faulty) == faulty and all(0 <= n < nodes for n in plan.faulty)


def test_bulkfree_with_a_fault_armed_on_a_node_keeps_it_in(tmp_path):
    # the fault never fires: the node takes part in bulkfree and every flush
    ops = [("fault", 2, "corrupt", 27, 1.0, 1, 6534189678562749639),
           ("mkdir", "/d760", 0o1777), ("bulkfree",),
           ("symlink", "tttttttttttttttttttx", "/d760/s763"), ("flush",),
           ("symlink", "x", "/s993")]
    run = run_ops(tmp_path, Config(seed=1130513683, nodes=3, faults=True), ops)
    assert run.faults_injected == 0 and run.result == {"diverged_nodes": []}


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
    assert run.recoveries == 1 and run.result == {"diverged_nodes": []}
    assert run.model.exists("/c")
