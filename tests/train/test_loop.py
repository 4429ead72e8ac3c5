"""The one loop on a toy recipe: records, eval cadence, checkpoints and exact resume, the guard's
stop, the sinks (metrics.jsonl purge on resume, TensorBoard / W&B wiring), the progress line."""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch

from reasoner.errors import UserError
from reasoner.train import LoopOptions, Optim, RecipeBase, Step, train
from reasoner.train.progress import StepProgress, human_count, human_duration, status_line
from reasoner.utils.guard import RefusedStep


class _Optim:
    lr, weight_decay, betas, warmup_steps, schedule = 0.05, 0.0, [0.9, 0.95], 0, "constant"
    max_grad_norm, max_update_ratio = 1.0, 1.0


class LineFit(RecipeBase):
    """Fit y = 3x + 1 with a 1-parameter-pair model; a batch per step drawn from a seeded stream."""

    name = "toy"

    def __init__(self, steps=6, fail_at=None, refuse_at=None):
        torch.manual_seed(0)
        self.model = torch.nn.Linear(1, 1)
        self.total_steps, self.fail_at, self.refuse_at = steps, fail_at, refuse_at
        self.evals = []

    def setup(self, out_dir):
        self.opt = Optim(self.model, "policy", _Optim.lr, _Optim, self.total_steps)

    def models(self):
        return {"policy": self.model}

    def state_dict(self):
        return self.opt.state_dict()

    def load_state_dict(self, state):
        self.opt.load_state_dict(state)

    def train_step(self, step):
        if step == self.fail_at:
            raise RuntimeError("simulated crash")
        x = torch.randn(8, 1, generator=torch.Generator().manual_seed(step))
        loss = ((self.model(x) - (3 * x + 1)) ** 2).mean()
        if step == self.refuse_at:
            raise RefusedStep("policy loss is nan")
        loss.backward()
        grad_norm = self.opt.step()
        return Step({"loss": round(float(loss.detach()), 6), "grad_norm": grad_norm}, tokens=8)

    def evaluate(self):
        self.evals.append(True)
        return 0.5

    def save_final(self, out_dir, last_eval):
        torch.save(self.model.state_dict(), out_dir / "final.pt")
        return {"steps": self.total_steps, "last_eval": last_eval}


def _records(path):
    return [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]


def test_records_follow_log_every_eval_steps_and_the_last_step(tmp_path):
    summary = train(LineFit(steps=7), tmp_path, LoopOptions(log_every=3, eval_every=2))
    recs = _records(tmp_path)
    assert [r["step"] for r in recs] == [2, 3, 4, 6, 7]
    assert [r["step"] for r in recs if "eval_accuracy" in r] == [2, 4, 6, 7]
    assert all(r["tokens_per_s"] > 0 for r in recs)
    assert summary["steps"] == 7 and summary["last_eval"] == 0.5 and "wall_s" in summary
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_a_recipe_that_reports_its_own_final_accuracy_is_not_evaluated_at_the_last_step(tmp_path):
    recipe = LineFit(steps=4)
    recipe.eval_at_end = False
    train(recipe, tmp_path, LoopOptions(eval_every=2))
    assert [r["step"] for r in _records(tmp_path) if "eval_accuracy" in r] == [2]


def test_crash_then_resume_matches_an_uninterrupted_run(tmp_path):
    train(LineFit(), tmp_path / "whole", LoopOptions(save_every=2))
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(LineFit(fail_at=4), tmp_path / "crashed", LoopOptions(save_every=2))
    assert [r["step"] for r in _records(tmp_path / "crashed")] == [1, 2, 3, 4]
    train(LineFit(), tmp_path / "crashed", LoopOptions(save_every=2))  # resumes from step-4
    strip = [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in _records(tmp_path / "whole")]
    assert [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in _records(tmp_path / "crashed")] == strip
    a, b = torch.load(tmp_path / "whole" / "final.pt"), torch.load(tmp_path / "crashed" / "final.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resuming_under_other_settings_is_refused_and_reporting_keys_may_change(tmp_path):
    settings = {"run_dir": "a", "optim": {"lr": 0.05}, "log_every": 1, "seed": 0}
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(LineFit(fail_at=4), tmp_path, LoopOptions(save_every=2, config=settings))
    changed = {**settings, "optim": {"lr": 0.1}}
    with pytest.raises(UserError, match=r"^checkpoint .*step-4: this run was started with optim.lr=0.05 \(now 0.1\); "
                                        r"resume with the same settings"):
        train(LineFit(), tmp_path, LoopOptions(save_every=2, config=changed))
    assert [r["step"] for r in _records(tmp_path)] == [1, 2, 3, 4]  # nothing appended
    reporting = {**settings, "run_dir": "b", "log_every": 2}
    train(LineFit(), tmp_path, LoopOptions(save_every=2, config=reporting))
    assert (tmp_path / "summary.json").is_file()


def test_a_refused_step_stops_with_one_line_and_no_final_save(tmp_path):
    with pytest.raises(UserError, match=r"^toy: policy loss is nan at step 4; step refused, stopped without saving "
                                        r"\(last good checkpoint kept: .*step-2\)$"):
        train(LineFit(refuse_at=3), tmp_path, LoopOptions(save_every=2))
    assert not (tmp_path / "summary.json").exists() and not (tmp_path / "final.pt").exists()


def test_resume_false_starts_over_and_drops_the_old_records(tmp_path):
    train(LineFit(steps=3), tmp_path)
    train(LineFit(steps=2), tmp_path, LoopOptions(resume=False))
    assert [r["step"] for r in _records(tmp_path)] == [1, 2]


@pytest.fixture
def fake_sinks(monkeypatch):
    """TensorBoard's SummaryWriter and wandb, recorded (neither is installed in the test venv)."""
    calls = {"tb": [], "wandb": []}

    class Writer:
        def __init__(self, logdir, purge_step=None):
            calls["tb"].append(("init", logdir, purge_step))

        def add_scalar(self, key, value, step):
            calls["tb"].append((key, value, step))

        def flush(self):
            pass

        def close(self):
            calls["tb"].append(("close",))

    class Run:
        def log(self, scalars, step):
            calls["wandb"].append((scalars, step))

        def finish(self):
            calls["wandb"].append("finish")

    def init(**kwargs):
        calls["wandb"].append(("init", kwargs["resume"]))
        return Run()

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer))
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
    return calls


def test_tensorboard_and_wandb_get_every_record(tmp_path, fake_sinks):
    train(LineFit(steps=2), tmp_path, LoopOptions(tensorboard=True, wandb=True))
    assert fake_sinks["tb"][0] == ("init", str(tmp_path / "tensorboard"), 1)
    assert {(k, s) for k, _, s in (c for c in fake_sinks["tb"] if len(c) == 3 and c[0] != "init")} >= {
        ("loss", 1), ("loss", 2), ("tokens_per_s", 2)}
    assert fake_sinks["tb"][-1] == ("close",)
    logged = [c for c in fake_sinks["wandb"] if isinstance(c, tuple) and c[0] != "init"]
    assert [step for _, step in logged] == [1, 2] and "loss" in logged[0][0]
    assert fake_sinks["wandb"][0] == ("init", "allow") and fake_sinks["wandb"][-1] == "finish"


@pytest.mark.parametrize("command,extra", [("train-sft", []), ("train-prm", ["train_file=x.jsonl"]), ("train-rl", []), ("train-rl", ["algo=rft"])])
def test_a_missing_sink_package_is_one_line_before_anything_is_written(cli, tmp_path, command, extra):
    code, _, err = cli(command, f"run_dir={tmp_path / 'run'}", "tensorboard=true", *extra)
    assert code == 2 and err.strip() == "error: config: tensorboard=true needs the tensorboard package (pip install tensorboard)"
    assert not (tmp_path / "run").exists()


def test_the_status_line_and_its_units():
    assert status_line(120, 400, {"loss": 0.0123}, 12345.0, 180) == "step 120/400 loss 0.0123 12.3k tok/s eta 3m"
    assert status_line(1, 2, {}, None, None) == "step 1/2"
    assert (human_count(87.25), human_count(2.5e6), human_duration(42), human_duration(75), human_duration(3700)) == (
        "87.2", "2.5M", "42s", "1m15s", "1h01m")


def test_off_a_terminal_progress_is_a_line_on_the_first_and_last_step(tmp_path, capsys):
    train(LineFit(steps=3), tmp_path)
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("toy: step")]
    assert [x.split()[2] for x in lines] == ["1/3", "3/3"]
    assert "loss" in lines[0] and "tok/s" in lines[0] and "eta" in lines[0]


def test_progress_lines_come_every_every_s_seconds(capsys, monkeypatch):
    now = [0.0]
    monkeypatch.setattr("reasoner.train.progress.time.monotonic", lambda: now[0])
    with StepProgress("run", 10, interactive=False, every_s=30) as bar:
        for step in range(1, 11):
            now[0] = step * 10.0
            bar.update(step, {"loss": 1.0}, 100.0)
    steps = [x.split()[2] for x in capsys.readouterr().err.splitlines() if x.startswith("run: step")]
    assert steps == ["1/10", "4/10", "7/10", "10/10"]
