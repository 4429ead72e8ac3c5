"""`reasoner recipe gym`: every method of the toolkit on the arithmetic-gym organism, one command.

SFT (3 seeds) -> collect with step labels -> PRMs (exact, Math-Shepherd, OmegaPRM, implicit) ->
search sweep over budgets -> online RL (7 algorithms x seeds; RLEP replays a pool collected from
the GRPO seed-0 policy) -> offline data -> OREO / RFT / DPO (x seeds, iterative OREO) -> OREO
value-guided beam search; then docs/results/gym.md.
Everything after SFT starts from the seed-0 SFT policy (the seeds of the later stages are their
own), every accuracy is on the same held-out test problems, and no knob here was chosen on
them: the defaults in conf/ come from validation-split sweeps (docs/results/organism.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reasoner.recipes.jobs import Job

ONLINE = ("grpo", "dapo", "dr_grpo", "rloo", "ppo", "prime", "rlep")
OFFLINE = ("rft", "dpo", "oreo")
SEARCH = ("majority", "best_of_n", "weighted_best_of_n", "beam", "dvts", "mcts")
LABELS = ("truth", "shepherd", "omegaprm")


@dataclass(frozen=True)
class Size:
    """How big each stage is. `full` is the results table; `quick` the same pipeline in <= 20
    minutes (one seed); `toy` the CI smoke run (seconds per stage, numbers meaningless)."""

    seeds: tuple[int, ...]
    eval_n: int  # held-out test problems of every greedy evaluation
    sample_n: int  # held-out test problems of sampled metrics and search
    samples: int  # samples per problem for maj@k / pass@k
    sft_steps: int | None  # None: the conf default (2 epochs of data.num_problems)
    sft_problems: int | None
    prm_problems: int  # training problems whose samples are labelled
    prm_eval: int  # validation (threshold choice) and test problems for eval-prm
    budgets: tuple[int, ...]
    rl_steps: int
    rl_eval_every: int
    rl_prompts: int  # prompts per step (x rl_n samples = rollouts per step)
    rl_n: int
    offline_problems: int
    offline_n: int
    oreo_rounds: int
    max_steps: int | None = None  # cap on PRM / offline steps (toy)
    rl_problems: int | None = None  # training problems online RL draws from and RLEP's pool covers (None: the data's)
    ops: tuple[int, int] = (2, 3)  # the gym's min_ops / max_ops (conf/data/arith.yaml); "longer" = the next two
    sft_extra: tuple[str, ...] = ()

    @property
    def rl_seeds(self) -> tuple[int, ...]:
        return self.seeds


SIZES = {
    "full": Size(seeds=(0, 1, 2), eval_n=1000, sample_n=500, samples=16, sft_steps=None, sft_problems=None,
                 prm_problems=1000, prm_eval=300, budgets=(1, 4, 16, 64), rl_steps=200, rl_eval_every=25, rl_prompts=16, rl_n=8,
                 offline_problems=2000, offline_n=8, oreo_rounds=3),
    # 60 RL steps made the quick run 24 minutes (PPO alone 9); 40 keeps it within 20; RL draws from
    # 2,000 problems so that RLEP's pool (one collect over them) stays a minute
    "quick": Size(seeds=(0,), eval_n=300, sample_n=200, samples=16, sft_steps=None, sft_problems=None,
                  prm_problems=300, prm_eval=100, budgets=(1, 4, 16), rl_steps=40, rl_eval_every=20, rl_prompts=16, rl_n=8,
                  offline_problems=500, offline_n=8, oreo_rounds=2, rl_problems=2000),
    # one-operation problems and a high lr, so that ~300 SFT steps (a minute) solve some of them:
    # every later stage needs a few correct samples to have something to work on
    "toy": Size(seeds=(0,), eval_n=6, sample_n=4, samples=4, sft_steps=300, sft_problems=9600,
                prm_problems=6, prm_eval=4, budgets=(1, 2), rl_steps=2, rl_eval_every=1, rl_prompts=2, rl_n=2,
                offline_problems=8, offline_n=4, oreo_rounds=2, max_steps=2, ops=(1, 1),
                sft_extra=("optim.lr=3e-3", "optim.warmup_steps=20")),
}


class _Plan:
    """The jobs being built, with the overrides every command gets."""

    def __init__(self, out: Path, size: Size, extra: list[str] | None):
        data = [] if size.ops == (2, 3) else [f"data.min_ops={size.ops[0]}", f"data.max_ops={size.ops[1]}"]
        self.out, self.size, self.extra = out, size, data + list(extra or [])
        self.longer = [f"data.min_ops={size.ops[1] + 1}", f"data.max_ops={size.ops[1] + 2}"]
        self.toy = size.max_steps is not None
        self.gen_cap = ["generation.max_new_tokens=24"] if self.toy else []
        self.policy = f"{out}/sft-s0/final"  # every stage after SFT starts from the seed-0 policy
        self.start = ["sft-s0"]
        self.jobs: list[Job] = []

    def add(self, name, command, args, after=(), done="summary.json"):
        tail = [*self.extra, *self.longer] if name.endswith("-longer") else self.extra  # later overrides win
        self.jobs.append(Job(name, command, [*args, *tail], self.out / name, list(after), done))


def build(out: Path, size: Size, extra: list[str] | None = None) -> list[Job]:
    """Every job of the pipeline, in dependency order. `extra` overrides go to every command
    (e.g. model.device=cuda)."""
    plan = _Plan(out, size, extra)
    for stage in (_sft, _prms, _search, _offline_data, _online_rl, _offline_rl, _value_search):
        stage(plan)
    return plan.jobs


def _sft(p: _Plan) -> None:
    """SFT per seed, each evaluated greedy, sampled (maj@k / pass@k) and on longer chains."""
    size, cap = p.size, p.gen_cap
    for s in size.seeds:
        args = [f"seed={s}", f"model.seed={s}", *size.sft_extra]
        if size.sft_steps:
            args.append(f"max_steps={size.sft_steps}")
        if size.sft_problems:
            args.append(f"data.num_problems={size.sft_problems}")
        p.add(f"sft-s{s}", "train-sft", args)
        model = f"model={p.out}/sft-s{s}/final"
        p.add(f"sft-s{s}-greedy", "decode", [model, "data.split=test", f"data.num_problems={size.eval_n}", *cap],
              [f"sft-s{s}"])
        p.add(f"sft-s{s}-sampled", "decode", [model, "data.split=test", f"data.num_problems={size.sample_n}",
                                              f"generation.n={size.samples}", "generation.temperature=1.0",
                                              f"k=[1,{size.samples}]", *cap], [f"sft-s{s}"])
        p.add(f"sft-s{s}-longer", "decode", [model, "data.split=test", f"data.num_problems={size.eval_n}",
                                             "generation.max_new_tokens=128"], [f"sft-s{s}"])


def _prms(p: _Plan) -> None:
    """Step-labelled samples (three labelers), a PRM on each (+ the implicit PRM), eval-prm."""
    size, out = p.size, p.out
    collect = [f"model={p.policy}", "n=4", "max_tokens=64"]
    for label in LABELS:
        rollouts = ["labels.rollouts=8"] if label != "truth" else []
        p.add(f"collect-{label}", "collect", [*collect, "data.split=train", f"data.num_problems={size.prm_problems}",
                                              f"labels={label}", *rollouts], p.start)
    for split, seed in (("validation", 1), ("test", 2)):
        p.add(f"collect-{split}", "collect", [*collect, f"data.split={split}", f"data.num_problems={size.prm_eval}",
                                              "labels=truth", f"generation.seed={seed}"], p.start)
    prm_cap = [f"max_steps={size.max_steps}"] if p.toy else []
    for label in LABELS:
        p.add(f"prm-{label}", "train-prm", [f"model={p.policy}", f"train_file={out}/collect-{label}/trajectories.jsonl",
                                            *prm_cap], [f"collect-{label}"])
    p.add("prm-implicit", "train-prm", [f"model={p.policy}", "prm=implicit",
                                        f"train_file={out}/collect-truth/trajectories.jsonl", *prm_cap], ["collect-truth"])
    for prm in (*LABELS, "implicit"):
        for split in ("validation", "test"):
            p.add(f"evalprm-{prm}-{split}", "eval-prm", [f"model={p.policy}", f"prm_model={out}/prm-{prm}/final",
                                                        f"eval_file={out}/collect-{split}/trajectories.jsonl"],
                  [f"prm-{prm}", f"collect-{split}"])


def _search(p: _Plan) -> None:
    """Every search method at every budget, guided by the exact-label PRM."""
    budgets = ",".join(map(str, p.size.budgets))
    p.add("search-sweep", "decode", [f"model={p.policy}", "data.split=test", f"data.num_problems={p.size.sample_n}",
                                     f"sweep=[{budgets}]", f"sweep_methods=[{','.join(SEARCH)}]",
                                     "scorer.kind=prm", f"scorer.path={p.out}/prm-truth/final", *p.gen_cap],
          ["prm-truth"])


def _offline_data(p: _Plan) -> None:
    """Balanced samples of the SFT policy: the offline algorithms' data and RLEP's pool."""
    p.add("collect-offline", "collect", [f"model={p.policy}", "data.split=train",
                                         f"data.num_problems={p.size.offline_problems}", f"n={p.size.offline_n}",
                                         "max_tokens=64", "selection=balanced"], p.start)


def _online_rl(p: _Plan) -> None:
    size = p.size
    rl = [f"model={p.policy}", f"steps={size.rl_steps}", f"eval_every={size.rl_eval_every}",
          f"eval_problems={size.eval_n}", f"prompts_per_step={size.rl_prompts}", f"generation.n={size.rl_n}", *p.gen_cap]
    problems = [f"data.num_problems={size.rl_problems}"] if size.rl_problems else []
    rl += problems
    if not p.toy:
        _rlep_pool(p)
    for s in size.rl_seeds:
        for algo in sorted(ONLINE, key=lambda a: a != "ppo"):  # the slowest first: it must not run alone at the end
            args = [f"algo={algo}", *rl, f"seed={s}", f"generation.seed={s}"]
            after = list(p.start)
            if algo == "rlep" and p.toy:  # the toy policy solves nothing: its pool can only grow
                args.append("algo.pool_grow=true")
            elif algo == "rlep":
                args.append(f"algo.pool_file={p.out}/collect-pool/trajectories.jsonl")
                after.append("collect-pool")
            p.add(f"rl-{algo}-s{s}", "train-rl", args, after)


def _rlep_pool(p: _Plan) -> None:
    """RLEP's phase 1 as in the paper: verified-correct answers of an RL-trained policy (GRPO seed
    0) on the problems RL draws its prompts from. A pool of SFT samples on the offline data's
    2,000 problems covered 7% of them: RLEP replayed ~1 answer per step and trained like GRPO."""
    problems = [f"data.num_problems={p.size.rl_problems}"] if p.size.rl_problems else []
    p.add("collect-pool", "collect", [f"model={p.out}/rl-grpo-s0/final", "data.split=train", *problems, "n=4",
                                      "max_tokens=64", "selection=correct"], ["rl-grpo-s0"])


def _offline_rl(p: _Plan) -> None:
    size = p.size
    off = [f"model={p.policy}", f"train_file={p.out}/collect-offline/trajectories.jsonl", f"eval_problems={size.eval_n}"]
    off_cap = [f"steps={size.max_steps}"] if p.toy else []
    for s in size.seeds:
        for algo in OFFLINE:
            p.add(f"off-{algo}-s{s}", "train-rl", [f"algo={algo}", *off, f"seed={s}", *off_cap], ["collect-offline"])
    p.add("off-oreo-iterative", "train-rl", ["algo=oreo", *off, f"rounds={size.oreo_rounds}", "seed=0", *off_cap,
                                             f"data.num_problems={size.offline_problems}",  # each round's collection
                                             f"generation.n={size.offline_n}", "generation.max_new_tokens=64",
                                             *p.gen_cap], ["collect-offline"])


def _value_search(p: _Plan) -> None:
    """OREO's policy greedy vs guided by OREO's value model (beam search)."""
    oreo = f"{p.out}/off-oreo-s0"
    eval_data = ["data.split=test", f"data.num_problems={p.size.sample_n}"]
    p.add("oreo-greedy", "decode", [f"model={oreo}/final", *eval_data, *p.gen_cap], ["off-oreo-s0"])
    p.add("oreo-value-beam", "decode", [f"model={oreo}/final", *eval_data, "search=value_beam", "generation.n=16",
                                        "scorer.kind=value", f"scorer.path={oreo}/value", *p.gen_cap], ["off-oreo-s0"])
    # the same value picking among 16 samples: how well it ranks complete solutions (the page's diagnosis)
    p.add("oreo-value-bon", "decode", [f"model={oreo}/final", *eval_data, "search=best_of_n", "generation.n=16",
                                       "scorer.kind=value", f"scorer.path={oreo}/value", *p.gen_cap], ["off-oreo-s0"])
