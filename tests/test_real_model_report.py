"""scripts/real_model_report.py: the SFT section from its runs, and sections whose runs came from an
earlier invocation (another RUNS dir) kept from the page as it was, command rows included."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import yaml

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "real_model_report.py"


def _report():
    spec = importlib.util.spec_from_file_location("real_model_report", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _gsm8k(tmp_path: Path) -> Path:
    path = tmp_path / "test.jsonl"
    rows = [{"question": f"What is {i} + 1?", "answer": f"{i} + 1 = {i + 1}\n#### {i + 1}"} for i in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _decode_run(run: Path, data: Path, responses: list[str], right: list[bool]) -> None:
    run.mkdir(parents=True)
    cfg = {"data": {"name": "gsm8k", "path": str(data), "split": "test", "limit": 4}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "results.jsonl").write_text("".join(
        json.dumps({"id": f"gsm8k-test-{i}", "pass@1": float(ok),
                    "samples": [{"response": r, "correct": ok, "finish_reason": "stop", "num_tokens": 4}]}) + "\n"
        for i, (r, ok) in enumerate(zip(responses, right))))


def test_sft_section_is_added_and_earlier_sections_and_commands_are_kept(tmp_path):
    report = _report()
    data = _gsm8k(tmp_path)
    runs = tmp_path / "runs"
    _decode_run(runs / "test-base-gsm8k", data, ["no idea", "2", "the sum is 3", "x"], [False, False, False, False])
    _decode_run(runs / "test-sft-gsm8k", data, ["Answer: 1", "Answer: 2", "Answer: 9", "Answer: 4"],
                [True, True, False, True])
    sft = runs / "sft-gsm8k"
    sft.mkdir()
    (sft / "config.yaml").write_text(yaml.safe_dump({
        "model": {"name_or_path": "smollm2-135m", "dtype": "bfloat16", "lora": {"r": 8, "alpha": 16}},
        "data": {"limit": 1000}, "epochs": 1, "batch_size": 8, "grad_accum": 2,
        "optim": {"lr": 2e-4, "schedule": "cosine", "warmup_steps": 6}}))
    (sft / "summary.json").write_text(json.dumps({"final_loss": 0.5}))
    (runs / "logs").mkdir()
    (runs / "logs" / "sft-gsm8k.wall").write_text("600\n")
    (runs / "commands.tsv").write_text("sft-gsm8k\tpython -m reasoner train-sft data=gsm8k\n")
    out = tmp_path / "real.md"
    out.write_text("# old\n\n## LoRA GRPO\n\nGRPO TABLE\n\n## Not here yet\n\nold\n\n## Commands\n\n"
                   "| run | wall | command |\n|---|---|---|\n| grpo | 18.0 min | `python -m reasoner train-rl` |\n\n"
                   "Sweep rows: `SWEEP CMD` and the same per task.\n")

    text = report.page(runs, out)

    assert "GRPO TABLE" in text and 'Kept from the page as it was' in text and '"LoRA GRPO"' in text
    assert "## LoRA SFT on GSM8K" in text and "final training loss 0.500" in text
    assert "| GSM8K test | default (committed answer) | 0.0 [0.0, 49.0] | 75.0 [30.1, 95.4] | +75.0" in text
    assert "+75.0 points on 4 problems: the difference exceeds the noise" in text
    assert "| base | 0.0% | 0.0% | 4 |" in text and "| trained | 100.0% | 0.0% | 4 |" in text
    assert "| grpo | 18.0 min |" in text and "| sft-gsm8k | 10.0 min | `python -m reasoner train-sft data=gsm8k` |" in text
    assert "Sweep rows: `SWEEP CMD`" in text
    assert text.index("## LoRA GRPO") < text.index("## LoRA SFT on GSM8K") < text.index("## Not here yet")


def _json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _yaml(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(obj))


def test_prm_section_compares_best_of_n_with_majority_on_the_same_problems(tmp_path):
    report = _report()
    runs = tmp_path / "runs"
    rows = []
    for n, maj, bon in ((1, [1, 0, 0, 0], [1, 0, 0, 0]), (4, [1, 0, 0, 0], [1, 1, 1, 0])):
        rows += [{"method": "majority", "n": n, "id": f"p{i}", "correct": bool(c)} for i, c in enumerate(maj)]
        rows += [{"method": "best_of_n", "n": n, "id": f"p{i}", "correct": bool(c)} for i, c in enumerate(bon)]
    bon_dir = runs / "test-prm-bon"
    bon_dir.mkdir(parents=True)
    (bon_dir / "sweep_results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _yaml(bon_dir / "config.yaml", {"scorer": {"aggregate": "min"}})
    _json(bon_dir / "summary.json", {"cells": [{"method": "majority", "n": 1, "oracle": 0.25},
                                              {"method": "majority", "n": 4, "oracle": 0.75}]})
    _json(runs / "collect-shepherd" / "summary.json", {"n": 4, "problems": 300, "accuracy": 0.06,
                                                       "label_stats": {"rollouts": 900, "positive_rate": 0.09, "steps": 700}})
    _yaml(runs / "collect-shepherd" / "config.yaml", {"generation": {"temperature": 0.7}, "labels": {"rollouts": 4}})
    _json(runs / "prm-shepherd" / "summary.json", {"steps": 75, "final_loss": 0.25})
    _yaml(runs / "prm-shepherd" / "config.yaml", {"model": {"lora": {"r": 8}}, "epochs": 1, "batch_size": 16,
                                                  "optim": {"lr": 2e-4}})
    _json(runs / "fit-prm-shepherd" / "summary.json", {
        "step_auc": 0.61, "solution_auc_min": 0.57, "acc_correct": 0.0, "acc_erroneous": 0.93, "correct": 28,
        "solutions": 1200, "outcome_accuracy": 0.0233, "positive_steps": 228, "steps": 2479})
    out = tmp_path / "real.md"
    out.write_text("# old\n\n## Earlier runs\n\nHAND WRITTEN\n\n## Not here yet\n\nold\n")

    text = report.page(runs, out)

    assert "## Shepherd PRM on SmolLM2: best-of-n vs majority vote" in text
    assert "900 rollouts" in text and "9.0% of 700 steps positive" in text and "final loss 0.250" in text
    assert "each test problem got 4 samples at temperature 0.8" in text and "lowest step score" in text
    assert "| 1 | 25.0 [4.6, 69.9] | 25.0 [4.6, 69.9] | +0.0 [+0.0, +0.0] | 25.0 | 4 |" in text
    assert "| 4 | 25.0 [4.6, 69.9] | 75.0 [30.1, 95.4] | +50.0 [" in text
    assert "best-of-4 minus majority@4: +50.0 points on 4 problems" in text
    assert "step AUC 0.61, right-vs-wrong solution AUC by the min step score 0.57" in text
    assert "held 28 right solutions of 1200 (2.3%) and 228 positive steps of 2479" in text
    assert "HAND WRITTEN" in text and text.index("## Shepherd PRM") < text.index("## Earlier runs") < text.index("## Not here yet")


def test_offline_section_puts_rft_and_oreo_beside_their_start(tmp_path):
    report = _report()
    data = _gsm8k(tmp_path)
    runs = tmp_path / "runs"
    _decode_run(runs / "test-base-task", data, ["a", "b", "c", "d"], [False, False, False, True])
    _decode_run(runs / "test-rft-task", data, ["a", "b", "c", "d"], [True, False, False, True])
    _decode_run(runs / "test-oreo-task", data, ["a", "b", "c", "d"], [True, True, False, True])
    _decode_run(runs / "test-rft-s1-task", data, ["a", "b", "c", "d"], [True, False, False, True])
    _decode_run(runs / "test-oreo-s1-task", data, ["a", "b", "c", "d"], [True, False, False, True])
    _decode_run(runs / "test-rft-s3-task", data, ["a", "b", "c", "d"], [True, True, True, True])
    _json(runs / "collect-offline" / "summary.json", {"n": 8, "problems": 300, "accuracy": 0.05, "records": 700,
                                                      "records_correct": 90})
    _yaml(runs / "collect-offline" / "config.yaml", {"generation": {"temperature": 0.7},
                                                     "selection": {"max_positive": 4, "max_negative": 2}})
    for who, steps in (("rft", 6), ("oreo", 44)):
        _json(runs / who / "summary.json", {"steps": steps})
        _yaml(runs / who / "config.yaml", {"model": {"lora": {"r": 8}}, "epochs": 1, "batch_size": 16,
                                           "optim": {"lr": 2e-4},
                                           "algo": {"oreo_beta": 0.03, "kl_coef": 0.01, "value_lr": 2e-4}})

    text = report.page(runs, tmp_path / "real.md")

    assert "## OREO vs RFT on SmolLM2" in text and "700 records (90 right)" in text
    assert "RFT fine-tunes on the right records (6 steps)" in text and "learns from all of them (44 steps)" in text
    assert "| start (untrained) | 25.0 [4.6, 69.9] | | | |" in text
    assert "| RFT | 50.0 [15.0, 85.0] | 50.0 [15.0, 85.0] | 50.0 ± 0.0 | +25.0 |" in text
    assert "| OREO | 75.0 [30.1, 95.4] | 50.0 [15.0, 85.0] | 62.5 ± 17.7 | +37.5 |" in text
    assert "per training seed: seed 0: +25.0 [" in text and "seed 1: +0.0 [+0.0, +0.0]; mean over seeds 12.5 ± 17.7" in text
    assert "exceeds the test problems' noise in 0 of 2 seed(s)." in text
    assert "| model | seed 0 [95% CI] | seed 1 [95% CI] | mean" in text
    assert "Seed 3: RFT only (100.0%); its OREO run did not finish" in text
