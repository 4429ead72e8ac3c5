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
