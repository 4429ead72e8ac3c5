"""decode writes per-problem results and a summary, resumes by id, and grades correctly."""

from __future__ import annotations

import json

from reasoner import config
from reasoner.stages import decode, sft
from tests.conftest import TINY


def test_decode_runs_and_resumes(tmp_path):
    cfg = config.load("decode", TINY + [f"run_dir={tmp_path}", "data.num_problems=6", "generation.max_new_tokens=8",
                                        "generation.n=2", "generation.temperature=1.0", "k=[1,2]"])
    summary = decode.run(cfg)
    assert summary["problems"] == 6 and summary["samples"] == 12
    assert {"accuracy", "pass@2", "maj@2", "tokens_per_s"} <= set(summary)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    # drop the last two records as if the run had been killed, then resume
    (tmp_path / "results.jsonl").write_text("\n".join(lines[:4]) + "\n")
    decode.run(cfg)
    ids = [json.loads(line)["id"] for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 6


def test_summary_timing_covers_every_segment_of_a_resumed_run(tmp_path):
    """wall_s / tokens_per_s add up all segments (each record holds its chunk's share), not the
    last segment only: a resume that finds everything done used to report wall_s ~0."""
    cfg = config.load("decode", TINY + [f"run_dir={tmp_path}", "data.num_problems=6", "generation.max_new_tokens=8",
                                        "generation.batch_size=2"])
    first = decode.run(cfg)
    recs = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert all(r["wall_s"] > 0 for r in recs)
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs[:4]))
    decode.run(cfg)                      # decodes the last chunk again
    recs = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    again = decode.run(cfg)              # nothing left to decode: the summary is of all segments
    wall = sum(r["wall_s"] for r in recs)
    assert again["wall_s"] == pytest.approx(wall, abs=0.01) and again["wall_s"] > 0
    assert again["tokens_per_s"] == pytest.approx(again["generated_tokens"] / wall, rel=0.01)
    assert again["generated_tokens"] == first["generated_tokens"]


def test_long_prompts_are_skipped_or_truncated_when_asked(tmp_path, cli):
    data = tmp_path / "q.jsonl"
    rows = [{"id": "a", "prompt": "1+2", "answer": "3"}, {"id": "b", "prompt": "9" * 400 + "+1", "answer": "1"},
            {"id": "c", "prompt": "2+2", "answer": "4"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = [*TINY, f"data={data}", "generation.max_new_tokens=4", "data.max_prompt_tokens=100"]
    code, _, err = cli("decode", *base, f"run_dir={tmp_path / 'e'}")
    assert code == 2 and err.strip() == (f"error: {data}:2: field 'prompt': prompt is 403 tokens, over "
                                         "data.max_prompt_tokens=100 (set data.on_long_prompt=skip|truncate to go on)")
    assert not (tmp_path / "e").exists()
    code, out, err = cli("decode", *base, f"run_dir={tmp_path / 's'}", "data.on_long_prompt=skip")
    assert code == 0 and "skipped 1 of 3 prompts" in err
    assert [json.loads(x)["id"] for x in (tmp_path / "s" / "results.jsonl").read_text().splitlines()] == ["a", "c"]
    code, out, err = cli("decode", *base, f"run_dir={tmp_path / 't'}", "data.on_long_prompt=truncate")
    assert code == 0 and "truncated 1 of 3 prompts" in err
    prompts = {json.loads(x)["id"]: json.loads(x)["prompt"] for x in (tmp_path / "t" / "results.jsonl").read_text().splitlines()}
    assert len(prompts["b"]) <= 100 and prompts["b"].endswith("9+1\n")
    # the tiny model has 512 positions: prompt + max_new_tokens must fit
    code, _, err = cli("decode", *TINY, f"data={data}", f"run_dir={tmp_path / 'p'}", "generation.max_new_tokens=300")
    assert code == 2 and "over the model's 512 positions" in err and f"{data}:2:" in err


def test_sft_then_decode_gets_gym_problems_right(tmp_path):
    """A short SFT on an easy gym must already solve some held-out problems greedily."""
    # no misconception in the SFT data: this checks that SFT learns, not what it learns
    easy = ["data.min_ops=1", "data.max_ops=1", "data.max_operand=20", "data.ops=+", "data.misconception_rate=0"]
    sft.run(config.load("train_sft", [f"run_dir={tmp_path}/sft", "data.num_problems=400", "batch_size=16",
                                      "max_steps=150", "optim.lr=3e-3", "optim.warmup_steps=10", *easy]))
    summary = decode.run(config.load("decode", [f"model.name_or_path={tmp_path}/sft/final", f"run_dir={tmp_path}/dec",
                                                "data.num_problems=30", "generation.max_new_tokens=24", *easy]))
    assert summary["accuracy"] >= 0.05  # an untrained model scores 0


# --------------------------------------------------------------------------- search and sweeps

import pytest  # noqa: E402

from reasoner.errors import UserError  # noqa: E402

SMALL = TINY + ["data.num_problems=4", "generation.max_new_tokens=12", "generation.batch_size=4"]


@pytest.fixture(scope="module")
def tiny_prm(tmp_path_factory):
    """An untrained tiny discriminative PRM directory, as `reasoner train-prm` writes them."""
    from reasoner.models import load_policy
    from reasoner.prm.model import PRMSpec, save_prm

    model, tok = load_policy(config.load("decode", TINY).model)
    return str(save_prm(model, tok, PRMSpec(), tmp_path_factory.mktemp("prm") / "final"))


def test_search_decode_records_budget_and_refuses_to_mix_runs(tmp_path, tiny_prm):
    cfg = config.load("decode", SMALL + [f"run_dir={tmp_path}", "search=beam", "generation.n=4",
                                         "search.params.width=2", "scorer.kind=prm", f"scorer.path={tiny_prm}"])
    summary = decode.run(cfg)
    assert summary["problems"] == 4 and summary["search"] == "beam"
    assert summary["generations_per_problem"] >= 4 and summary["generated_tokens"] > 0
    recs = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert all(r["generations"] >= 4 and r["candidates"] and r["search"] == "beam" for r in recs)
    assert summary["generated_tokens"] == sum(r["generated_tokens"] for r in recs)
    decode.run(cfg)  # resumes: nothing left to do
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 4
    other = config.load("decode", SMALL + [f"run_dir={tmp_path}", "search=majority", "generation.n=2"])
    with pytest.raises(UserError, match="holds results of search=beam n=4"):
        decode.run(other)


def test_guided_search_without_a_scorer_or_with_a_typo_stops_before_writing(tmp_path, cli):
    with pytest.raises(UserError, match="search 'mcts' needs a step scorer"):
        decode.run(config.load("decode", SMALL + [f"run_dir={tmp_path}/a", "search=mcts"]))
    code, _, err = cli("decode", "--search", "beam", *SMALL, f"run_dir={tmp_path}/b", "search.params.widht=2",
                       "scorer.kind=prm", "scorer.path=nowhere")
    assert code == 2 and "unknown key 'search.params.widht' (did you mean 'search.params.width'?)" in err
    code, _, err = cli("decode", "--sweep", "n=1,two", *SMALL, f"run_dir={tmp_path}/c")
    assert code == 2 and "--sweep" in err
    assert not any((tmp_path / d).exists() for d in "abc")


def test_sweep_writes_cells_table_and_plot_and_resumes(tmp_path, tiny_prm, cli):
    args = SMALL + [f"run_dir={tmp_path}", "sweep_methods=[majority,best_of_n,beam,mcts]", "scorer.kind=prm",
                    f"scorer.path={tiny_prm}"]
    code, out, err = cli("decode", "--sweep", "n=1,2", *args)
    assert code == 0, err
    cells = [json.loads(line) for line in (tmp_path / "sweep.jsonl").read_text().splitlines()]
    assert {(c["method"], c["n"]) for c in cells} == {(m, n) for m in ("majority", "best_of_n", "beam", "mcts") for n in (1, 2)}
    pooled = {(c["method"], c["n"]): c for c in cells}
    assert pooled[("majority", 2)]["generations"] == 2 and pooled[("best_of_n", 1)]["generations"] == 1
    assert (tmp_path / "sweep.png").stat().st_size > 0
    table = (tmp_path / "sweep.md").read_text()
    assert "| beam |" in table and "n=2" in table and "| beam |" in out
    code, _, _ = cli("decode", "--sweep", "n=1,2", *args)  # every cell is done: nothing re-run
    assert code == 0 and len((tmp_path / "sweep.jsonl").read_text().splitlines()) == len(cells)
    results = (tmp_path / "sweep_results.jsonl").read_text().splitlines()
    assert len(results) == len(cells) * 4


def test_held_out_problems_do_not_depend_on_the_training_draw():
    """In-training evaluation reads the same test problems whatever data.seed the run trains on."""
    from reasoner.evaluation import held_out
    from reasoner.tasks import get_task

    task = get_task("arith")
    base = config.load("train_rl", []).data
    other = config.load("train_rl", ["data.seed=7", "data.num_problems=500", "data.corrupt_fraction=0.3"]).data
    a, b = task.load_problems(held_out(base, 20)), task.load_problems(held_out(other, 20))
    assert [p.prompt for p in a] == [p.prompt for p in b] and len(a) == 20
    assert all(p.id.startswith("arith-test-0-") for p in b)


def test_eval_split_validation_reads_validation_problems_and_a_bad_split_fails_before_training():
    """Hyper-parameters are chosen on validation curves (eval_split=validation); a typo is one line, exit 2."""
    import pytest

    from reasoner.errors import UserError
    from reasoner.evaluation import check_eval_split, held_out
    from reasoner.tasks import get_task

    cfg = config.load("train_rl", ["eval_split=validation"])
    problems = get_task("arith").load_problems(held_out(cfg.data, 5, cfg.eval_split))
    assert all(p.id.startswith("arith-validation-0-") for p in problems) and len(problems) == 5
    for command in ("train_rl", "train_sft"):
        with pytest.raises(UserError, match="eval_split must be one of test, validation"):
            check_eval_split(config.load(command, ["eval_split=valid"]))


class _OneResponse:
    """A generator that answers every prompt with the same text."""

    def __init__(self, text: str):
        self.text = text

    def generate(self, prompts, params):
        from reasoner.generation.base import Completion

        ids = list(range(len(self.text) + 1))
        return [[Completion(self.text, ids, [0.0] * len(ids), "stop") for _ in range(params.n)] for _ in prompts]


@pytest.mark.parametrize("response, gold, answer, correct", [
    ("She has 3 + 4 = 7 apples.", "7", "7", True),            # no marked answer: GSM8K takes the last number
    ("3 + 4 = 7\n#### 8", "8", "8", True),                   # a marked answer wins over the last number
    ("She has 3 + 4 = 7 apples.", "4", "7", False),
    ("No idea.", "7", None, False),
])
def test_sample_and_majority_grade_a_gsm8k_response_the_same_way(response, gold, answer, correct):
    """search=sample and search=majority (n=1) on one response: same answer, same verdict."""
    from reasoner.data import Problem
    from reasoner.generation.base import SamplingParams
    from reasoner.search import SEARCH_METHODS, SearchTask, resolve_params
    from reasoner.tasks import get_task

    task = get_task("gsm8k")
    problem = Problem(id="g1", prompt="Q", answer=gold, source="gsm8k")
    generator = _OneResponse(response)
    result = SEARCH_METHODS["majority"](["Q\n"], generator, None, resolve_params("majority", {}), SearchTask.from_task(task), 1)[0]
    assert result.answer == answer  # the task's extraction, fallback rule included
    searched = decode.search_record(problem, "Q\n", result, lambda p, g: task.grade_answer(p, g), "majority", 1)
    completions = generator.generate(["Q\n"], SamplingParams(n=1))[0]
    sample = decode.problem_record(problem, "Q\n", completions, task, [1], timeout=5.0)["samples"][0]
    assert result.response == sample["response"] == response
    assert (sample["pred_answer"], sample["correct"]) == (searched["answer"], searched["correct"]) == (answer, correct)
