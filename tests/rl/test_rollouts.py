"""Data position: the problems of a step are a pure function of (seed, step)."""

from reasoner.rl.rollouts import step_problem_indices, step_seed


def test_steps_walk_shuffled_epochs_without_repeats():
    seen = [i for s in range(5) for i in step_problem_indices(10, 2, seed=1, step=s)]
    assert sorted(seen) == list(range(10))  # one epoch = 5 steps of 2
    assert step_problem_indices(10, 2, 1, 7) == step_problem_indices(10, 2, 1, 7)
    assert step_problem_indices(10, 3, 1, 3) != step_problem_indices(10, 3, 2, 3)
    assert len(step_problem_indices(3, 4, 0, 0)) == 4  # crosses an epoch boundary


def test_step_seeds_differ():
    assert len({step_seed(s, g, t) for s in range(3) for g in range(2) for t in range(50)}) == 300
