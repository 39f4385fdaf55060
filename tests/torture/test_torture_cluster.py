"""Cluster torture: a PFS over several node images."""
import pytest

from harness.torture import Config
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
