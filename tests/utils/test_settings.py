"""The first differing setting between a run and its resume."""

from reasoner.utils.settings import first_difference, flatten


def test_flatten_joins_nested_keys():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}


def test_the_first_changed_key_in_sorted_order():
    old = {"optim": {"lr": 1e-3, "betas": [0.9, 0.95]}, "seed": 0}
    assert first_difference(old, {"optim": {"lr": 1e-4, "betas": [0.9, 0.99]}, "seed": 1}) == ("optim.betas", [0.9, 0.95], [0.9, 0.99])
    assert first_difference(old, old) is None


def test_free_keys_and_prefixes_and_one_sided_keys_are_not_differences():
    old = {"run_dir": "a", "dist": {"backend": "gloo", "strategy": "ddp"}, "gone": 1}
    new = {"run_dir": "b", "dist": {"backend": "nccl", "strategy": "ddp"}, "added": 2}
    assert first_difference(old, new, ("run_dir", "dist.")) is None
    assert first_difference(old, new, ("run_dir",)) == ("dist.backend", "gloo", "nccl")
