"""Cluster torture: a PFS over several node images, all operations, with and without
device faults on a minority of the nodes."""
import pytest

from harness.torture import Config
from harness.torture.faults import FaultPlan


@pytest.mark.parametrize("nodes", [2, 3])
def test_all_ops_over_nodes_match_the_model(run_generated, nodes):
    run = run_generated(Config(seed=40 + nodes, nodes=nodes), 300)
    assert run.ops >= 290 and run.flushes > 5 and run.result == {"resynced": []}


@pytest.mark.parametrize("nodes,seed", [(3, 51), (3, 52), (5, 54)])
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
