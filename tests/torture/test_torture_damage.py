"""Damage at rest in the torture: blocks overwritten on a minority of the nodes, at
different places; reads stay exact through self-heal, and the end's scrub leaves every
node exact."""
import pytest

import pyh2
from pyh2.torture import Config, run_ops
from pyh2.torture import damage

SEED = 7_000_001
TREE = [("mkdir", "/d", 0o755)] + \
       [("create", f"/d/f{i}", 40_000 + 9_000 * i, 100 + i, 0o644) for i in range(12)] + \
       [("symlink", "/d/f1", "/s"), ("flush",)]


def _overlap(a, b):
    return a[:len(b)] == b or b[:len(a)] == a


def test_the_plan_leaves_every_element_a_good_copy(tmp_path):
    run = run_ops(tmp_path, Config(seed=SEED, nodes=5), TREE)
    for seed in range(20):
        plan = damage.plan(run.images, seed, [1, 3])
        # a node's damage high in the tree (the super-root) may leave the other none
        assert sorted(plan) == [1, 3] and all(len(s) <= 3 for s in plan.values())
        assert any(plan.values())
        paths = {n: {p for p, off, size in damage._places(run.images[n])
                     if (off, size) in plan[n]} for n in plan}
        a, b = paths.values()
        assert not any(_overlap(x, y) for x in a for y in b), seed


def test_the_damage_is_real(tmp_path):
    """What apply() writes fails the node's own check codes."""
    run = run_ops(tmp_path, Config(seed=SEED, nodes=3), TREE)
    node, spots = next(iter(damage.plan(run.images, 5, [2]).items()))
    damage.apply(run.images[node], spots, 5)
    with pyh2.open(run.images[node]) as vol:
        assert vol.fsck()["errors"]


@pytest.mark.parametrize("nodes,crash", [(5, False), (3, True)])
def test_damage_at_rest_is_healed(tmp_path, nodes, crash):
    """Reads after the damage are exact; a write goes on (a node that cannot read what it
    changes is failed, and comes back); the damaged nodes end scrubbed and exact (the run
    raises TortureFailure otherwise)."""
    bad = [1, 3] if nodes == 5 else [2]
    ops = TREE + [("damage", 11, bad), ("read", "/d/f7", 0, 200_000),
                  ("write", "/d/f3", 1000, 5000, 77), ("flush",), ("reopen",)]
    run = run_ops(tmp_path, Config(seed=SEED, nodes=nodes, crash=crash), ops)
    assert run.result["damaged"] == bad
