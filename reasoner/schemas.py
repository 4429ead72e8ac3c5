"""The typed config of every command: one dataclass per subcommand (SCHEMAS, keyed by its
conf/<name>.yaml) and the groups they are built from. `reasoner.config.load` merges a command's
yamls and the user's overrides into these, strictly; stage code only ever sees these objects.
RL algorithms extend AlgoConfig with their own dataclass (reasoner/algos/online, algos/offline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class LoraConfig:
    enabled: bool = False
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


@dataclass
class TinyConfig:
    """Sizes of the locally built `tiny-arith` preset."""

    arch: str = "llama"
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 384
    max_position_embeddings: int = 512


@dataclass
class ModelConfig:
    name_or_path: str = "tiny-arith"
    gguf_file: Optional[str] = None
    dtype: str = "auto"
    device: str = "auto"
    trust_remote_code: bool = False
    seed: int = 0
    quantization: Optional[str] = None
    chat_template: str = "auto"  # auto: use the tokenizer's template when it has one | none
    system_prompt: Optional[str] = None
    lora: LoraConfig = field(default_factory=LoraConfig)
    tiny: TinyConfig = field(default_factory=TinyConfig)


@dataclass
class DataConfig:
    name: str = "arith"
    path: Optional[str] = None
    split: str = "train"
    limit: Optional[int] = None
    prompt_field: Optional[str] = None
    answer_field: Optional[str] = None
    id_field: Optional[str] = None
    num_problems: int = 20000
    seed: int = 0
    min_ops: int = 2
    max_ops: int = 3
    max_operand: int = 9
    ops: str = "+-*"
    corrupt_fraction: float = 0.0
    misconception_rate: float = 0.0  # arith SFT data: P(a carry/borrow step is written the buggy way)
    misconception_ops: str = "+-"  # arith: which operations carry the misconception
    answer_fallback: Optional[bool] = None  # take the last number when no answer is marked (null: the task's default)
    max_prompt_tokens: Optional[int] = 2048  # longest prompt (as sent, in tokens) a command takes; null: no limit but the model's
    on_long_prompt: str = "error"  # a longer prompt (or one that leaves no room for max_new_tokens): error | skip | truncate
    # data=reasoning_gym: a task name or a list of them, the task's own settings (free-form: the package
    # owns their names; checked against the task's config class), and a list's mixing weights (null: equal)
    task: Any = None
    task_config: dict[str, Any] = field(default_factory=dict)
    weights: Optional[list[float]] = None


@dataclass
class GenerationConfig:
    backend: str = "hf"  # hf | vllm
    batch_size: int = 32
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    n: int = 1
    seed: int = 0
    stop: list[str] = field(default_factory=list)
    prefix_cache: bool = False  # hf: reuse K/V of earlier calls' sequences for prompts extending them (search)
    prefix_cache_mb: float = 1024  # hf: memory for the prefix cache's K/V (sets how many tokens it keeps)
    prefix_cache_tokens: Optional[int] = None  # hf: or a fixed number of tokens instead
    # vllm: extra vllm.LLM args (max_model_len, gpu_memory_utilization, enforce_eager, ...); free-form on
    # purpose (passed through to vllm.LLM, which owns their names), so its keys are not checked here
    vllm: dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchConfig:
    name: str = "sample"  # greedy/sampling here; PRM-guided methods plug in by name
    params: dict[str, Any] = field(default_factory=dict)  # checked against the method's own (search/methods.py)


@dataclass
class PRMConfig:
    """Process reward model kind and its knobs; prm=discriminative|implicit."""

    name: str = "discriminative"
    head: str = "tokens"  # tokens: P(+) from the '+'/'-' logits | scalar: a 1-logit head
    label_type: str = "hard"  # hard (cross-entropy) | soft (BCE against the MC value)
    step_tag: str = " ки"
    positive_token: str = "+"
    negative_token: str = "-"
    beta: float = 0.05  # implicit PRM
    threshold: float = 0.5  # a soft label >= threshold counts as positive for hard training/eval
    implicit_score: Optional[str] = None  # implicit PRM: step | cumulative (sum so far); null: the PRM dir's (step)
    step_separator: Optional[str] = None  # null: the task's separator (train-prm); "\n" for scorers without prm.json


@dataclass
class ScorerConfig:
    """What scores steps during search: a PRM, an implicit PRM, a value model, or none."""

    kind: str = "none"  # none | prm | implicit | value | orm
    path: Optional[str] = None  # the trained scorer's directory
    aggregate: str = "last"  # min | last | prod | mean
    batch_size: int = 32
    prm: PRMConfig = field(default_factory=lambda: PRMConfig())


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    warmup_steps: int = 20
    schedule: str = "cosine"  # cosine | linear | constant
    max_grad_norm: float = 1.0
    # a step moving the weights by more than this fraction of their norm is refused (exit 2); null: off
    max_update_ratio: Optional[float] = 1.0
    # fp32 | bf16: the training passes under bf16 autocast, weights and optimiser state fp32 (train/precision.py)
    precision: str = "fp32"


@dataclass
class DistConfig:
    """Scale-out of a training command (`reasoner launch --nproc N ...`, docs/distributed.md):
    how each optimiser steps across the processes; one process runs every strategy as single."""

    strategy: str = "single"  # single | ddp | deepspeed
    zero_stage: int = 2  # deepspeed: ZeRO stage 1, 2 or 3
    deepspeed_config: Optional[str] = None  # deepspeed: a DeepSpeed json instead of the fp32 ZeRO default
    backend: str = "auto"  # auto (nccl with CUDA, else gloo) | gloo | nccl


@dataclass
class TrainSFTConfig:
    run_dir: str = "runs/sft"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train_file: Optional[str] = None  # trajectories jsonl (e.g. from `reasoner collect`); else gold solutions of `data`
    correct_only: bool = True  # with train_file: keep reward==1 trajectories only
    epochs: float = 1.0
    max_steps: Optional[int] = None
    batch_size: int = 32
    grad_accum: int = 1
    max_length: int = 512
    seed: int = 0
    log_every: int = 10
    save_every: int = 200
    eval_every: int = 0
    eval_problems: int = 100
    eval_split: str = "test"  # test | validation (choose hyper-parameters on validation curves)
    resume: bool = True
    tensorboard: bool = False  # also log metrics to run_dir/tensorboard
    wandb: bool = False  # also log metrics to Weights & Biases
    dist: DistConfig = field(default_factory=DistConfig)


@dataclass
class DecodeConfig:
    run_dir: str = "runs/decode"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=lambda: DataConfig(split="test", num_problems=200))
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    k: list[int] = field(default_factory=lambda: [1])  # pass@k / maj@k to report (<= n)
    grader: Optional[str] = None  # override the task's grader: numeric | exact | math
    answer_timeout: float = 5.0
    scorer: ScorerConfig = field(default_factory=lambda: ScorerConfig())
    sweep: list[int] = field(default_factory=list)  # budgets (n) for an accuracy-vs-budget sweep
    sweep_methods: list[str] = field(default_factory=list)  # methods in the sweep; empty: search.name only


@dataclass
class LabelConfig:
    """Automatic step labels (ALGORITHMS.md §2); chosen with labels=none|shepherd|omegaprm."""

    name: str = "none"
    rollouts: int = 8  # completions per prefix (Shepherd) / per MC estimate (OmegaPRM)
    temperature: float = 1.0
    max_new_tokens: Optional[int] = None  # null: generation.max_new_tokens
    budget: int = 64  # OmegaPRM: rollouts per problem
    alpha: float = 0.5
    beta: float = 0.9
    length_scale: int = 500
    c_puct: float = 0.125


@dataclass
class SelectionConfig:
    """Which sampled trajectories are kept; selection=none|balanced|correct."""

    name: str = "none"
    max_positive: int = 4
    max_negative: int = 4


@dataclass
class CollectConfig:
    run_dir: str = "runs/collect"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    generation: GenerationConfig = field(default_factory=lambda: GenerationConfig(n=16, temperature=1.0))
    labels: LabelConfig = field(default_factory=LabelConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    step_separator: Optional[str] = None  # null: the task's separator
    problems_per_chunk: int = 8  # problems generated together (and appended together)
    seed: int = 0
    answer_timeout: float = 5.0


@dataclass
class TrainPRMConfig:
    run_dir: str = "runs/prm"
    model: ModelConfig = field(default_factory=ModelConfig)
    prm: PRMConfig = field(default_factory=PRMConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3))
    train_file: Optional[str] = None  # trajectories jsonl with step labels, or the TRL PRM format
    eval_file: Optional[str] = None
    epochs: float = 1.0
    max_steps: Optional[int] = None
    batch_size: int = 16
    grad_accum: int = 1
    max_length: int = 1024
    seed: int = 0
    log_every: int = 10
    save_every: int = 200
    resume: bool = True
    tensorboard: bool = False
    wandb: bool = False
    dist: DistConfig = field(default_factory=DistConfig)


@dataclass
class EvalPRMConfig:
    run_dir: str = "runs/eval-prm"
    prm_model: str = "runs/prm/final"
    prm: PRMConfig = field(default_factory=PRMConfig)
    model: ModelConfig = field(default_factory=ModelConfig)  # the policy whose samples are judged (gym)
    data: DataConfig = field(default_factory=lambda: DataConfig(split="test", num_problems=200))
    eval_file: Optional[str] = None  # labelled trajectories to judge; null: sample from `model` on `data`
    batch_size: int = 32
    samples_per_problem: int = 4
    label_source: str = "auto"  # reference labels: auto (truth when the task has a step checker) | truth | file
    score_threshold: float = 0.5  # a step scoring below this is predicted wrong
    generation: GenerationConfig = field(default_factory=lambda: GenerationConfig(temperature=1.0))


@dataclass
class ConvertConfig:
    input: str = "???"
    output: str = "???"
    input_format: str = "auto"  # auto | trajectories | trl-prm | math-shepherd
    output_format: str = "trl-prm"  # trajectories | trl-prm
    step_separator: str = "\n"
    partial: str = "fill"  # to trl-prm, steps without a label: fill (monotone rule) | truncate | skip | error
    label_type: str = "soft"  # to trl-prm: soft (floats as stored) | hard (label > threshold, booleans)
    threshold: float = 0.0  # hard = label > threshold (0.0: Math-Shepherd's "some rollout was correct")


@dataclass
class AlgoConfig:
    """What every RL algorithm's config has. Each algorithm (reasoner/algos/online, algos/offline,
    registered in algos/registry.py) has its own dataclass extending this one; config.load picks
    it by algo.name, so a key the chosen algorithm does not take is an error (algo=grpo|dapo|
    dr_grpo|rloo|ppo|prime|rlep|oreo|rft|dpo: conf/algo/*.yaml)."""

    name: str = "grpo"


def default_algo_config() -> AlgoConfig:
    """GRPO's config (train-rl's default algorithm), from the registry."""
    from reasoner.algos.registry import get_algorithm

    return get_algorithm("grpo").Config()


@dataclass
class RewardConfig:
    """Where rewards come from: the verifier (default), a PRM, or a custom function."""

    kind: str = "verifier"  # verifier | prm | custom (custom: reward.functions, or the one reward.function)
    prm_mode: str = "final"  # final (aggregate as the outcome) | dense (per-step rewards)
    # TRL-style reward functions "package.module:function" (or "file.py:function"), f(prompts, completions,
    # **columns) -> list[float]; the reward is their weighted sum; "reasoner.rl.rewards:verifier" is the answer check
    functions: list[str] = field(default_factory=list)
    weights: Optional[list[float]] = None  # one per function (null: 1.0 each)
    function: Optional[str] = None  # reward.kind=custom with one function (the same as reward.functions=[...])
    scorer: ScorerConfig = field(default_factory=lambda: ScorerConfig())


@dataclass
class TrainRLConfig:
    run_dir: str = "runs/rl"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    algo: AlgoConfig = field(default_factory=default_algo_config)  # the chosen algorithm's own dataclass
    reward: RewardConfig = field(default_factory=RewardConfig)
    generation: GenerationConfig = field(default_factory=lambda: GenerationConfig(n=8, temperature=1.0, max_new_tokens=128))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, warmup_steps=0, schedule="constant"))
    train_file: Optional[str] = None  # offline algorithms: trajectories from `reasoner collect`
    steps: int = 100  # online: optimisation steps (one rollout batch each); offline: max steps (null epochs)
    epochs: float = 1.0  # offline
    prompts_per_step: int = 8
    # online: draw each prompt's rollouts from its own seed, so N processes sample exactly what one
    # process does (null: on under `reasoner launch` with N > 1, off on one process)
    seed_per_prompt: Optional[bool] = None
    batch_size: int = 16  # sequences per forward/backward micro-batch
    rounds: int = 1  # iterative OREO: collect with the new policy, train again
    max_length: int = 512
    seed: int = 0
    eval_every: int = 10
    eval_problems: int = 200
    eval_split: str = "test"  # test | validation
    log_every: int = 1
    save_every: int = 50
    resume: bool = True
    tensorboard: bool = False
    wandb: bool = False
    dist: DistConfig = field(default_factory=DistConfig)


SCHEMAS: dict[str, type] = {
    "train_sft": TrainSFTConfig,
    "decode": DecodeConfig,
    "collect": CollectConfig,
    "train_prm": TrainPRMConfig,
    "eval_prm": EvalPRMConfig,
    "convert": ConvertConfig,
    "train_rl": TrainRLConfig,
}
