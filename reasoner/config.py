"""Typed config schemas and the one place that talks to Hydra.

Each subcommand composes `conf/<command>.yaml` with the user's `key=value` overrides, then
merges the result into a dataclass schema, so a typo or a wrong type fails with one line
instead of a stack trace, and stage code only ever sees typed objects. The config is strict at
every level: an unknown key (in an override or a yaml), an unknown group choice, a search
parameter the chosen method does not take, a data option the chosen source does not read, or a
value inconsistent with another (decode k > generation.n) stops with one line, with a
"did you mean" where a close name exists -- also under --dry-run.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from reasoner.errors import UserError


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
    misconception_rate: float = 0.0
    misconception_ops: str = "+-"
    answer_fallback: Optional[bool] = None  # take the last number when no answer is marked (null: the task's default)
    max_prompt_tokens: Optional[int] = 2048  # longest prompt (as sent, in tokens) a command takes; null: no limit but the model's
    on_long_prompt: str = "error"  # a longer prompt (or one that leaves no room for max_new_tokens): error | skip | truncate


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
    resume: bool = True
    tensorboard: bool = False  # also log metrics to run_dir/tensorboard
    wandb: bool = False  # also log metrics to Weights & Biases


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
    batch_size: int = 16  # sequences per forward/backward micro-batch
    rounds: int = 1  # iterative OREO: collect with the new policy, train again
    max_length: int = 512
    seed: int = 0
    eval_every: int = 10
    eval_problems: int = 200
    log_every: int = 1
    save_every: int = 50
    resume: bool = True
    tensorboard: bool = False
    wandb: bool = False


SCHEMAS: dict[str, type] = {
    "train_sft": TrainSFTConfig,
    "decode": DecodeConfig,
    "collect": CollectConfig,
    "train_prm": TrainPRMConfig,
    "eval_prm": EvalPRMConfig,
    "convert": ConvertConfig,
    "train_rl": TrainRLConfig,
}


def conf_dir() -> Path:
    """Configs ship inside the wheel as reasoner/conf; a source checkout keeps them at ./conf."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if candidate.is_dir():
            return candidate
    raise UserError(f"config directory not found next to {here} (broken install?)")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def _full_key_message(exc: BaseException) -> str:
    """OmegaConf errors carry the offending key path; put it in the one line."""
    msg = _one_line(exc)
    key = getattr(exc, "full_key", None)
    if key and key not in msg:
        msg = f"{key}: {msg}"
    return msg


GROUPS = ("model", "data", "search", "algo", "prm", "labels", "selection")


def split_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """Group choices (`model=smollm2-135m`) go to Hydra; every other `key=value` to the schema."""
    groups, values = [], []
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        (groups if key in GROUPS else values).append(item)
    return groups, values


def group_options(group: str) -> list[str]:
    """The choices of a config group: the yaml files in conf/<group>/."""
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


def closest(word: str, candidates) -> Optional[str]:
    """The candidate a typo most likely meant, or None when none is close."""
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def _unknown_choice(what: str, value: str, choices: list[str]) -> UserError:
    guess = closest(value, choices)
    hint = f"did you mean '{guess}'?" if guess else f"choose from {', '.join(choices)}"
    return UserError(f"config: unknown {what} '{value}' ({hint})")


def _command_groups(command: str) -> dict[str, str]:
    """The group choices conf/<command>.yaml starts from ({"model": "tiny-arith", ...})."""
    from omegaconf import OmegaConf

    defaults = OmegaConf.to_container(OmegaConf.load(conf_dir() / f"{command}.yaml")).get("defaults") or []
    return {k: v for entry in defaults if isinstance(entry, dict) for k, v in entry.items()}


def _check_group_choices(command: str, group_overrides: list[str]) -> dict[str, str]:
    """The command's group choices after the user's; an unknown group or choice is one line."""
    choices = _command_groups(command)
    for item in group_overrides:
        if item.startswith(("+", "~")):
            continue  # Hydra's own append/delete syntax: Hydra reports its errors
        group, _, value = item.partition("=")
        if group not in choices:
            raise UserError(f"config: unknown key '{group}' ({command.replace('_', '-')} has no {group} choice)")
        if value not in group_options(group):
            raise _unknown_choice(group, value, group_options(group))
        choices[group] = value
    return choices


def compose(command: str, group_overrides: list[str]):
    """Compose conf/<command>.yaml with its group choices and return a plain DictConfig."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return hydra_compose(config_name=command, overrides=list(group_overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise UserError(f"config: {_one_line(exc)}") from None
    finally:
        GlobalHydra.instance().clear()


def _parse_value_overrides(values: list[str]):
    from omegaconf import OmegaConf

    for item in values:
        if "=" not in item or item.startswith(("+", "~")):
            raise UserError(f"config: override '{item}' must look like key=value")
        if not item.split("=", 1)[0]:
            raise UserError(f"config: override '{item}' has an empty key")
    return OmegaConf.from_dotlist(values)


def _paths(node, prefix: str = "") -> list[str]:
    """Dotted paths of a config's keys, descending into schema (dataclass) nodes, shallow first."""
    from omegaconf import DictConfig, OmegaConf

    out, nested = [], []
    for key in node:
        child, path = node._get_node(key), f"{prefix}{key}"
        out.append(path)
        if isinstance(child, DictConfig) and dataclasses.is_dataclass(OmegaConf.get_type(child)):
            nested.append((child, path))
    for child, path in nested:
        out += _paths(child, f"{path}.")
    return out


def _suggest(path: str, siblings, schema_paths: list[str]) -> Optional[str]:
    """A close key at the same level (`optim.lrr` -> `optim.lr`), else a key of that name
    elsewhere in the schema (`lr` -> `optim.lr`, `nn` -> `generation.n`)."""
    prefix, _, leaf = path.rpartition(".")
    guess = closest(leaf, siblings)
    if guess:
        return f"{prefix}.{guess}" if prefix else guess
    by_leaf: dict[str, str] = {}
    for p in schema_paths:
        by_leaf.setdefault(p.rpartition(".")[2], p)
    guess = closest(leaf, by_leaf)
    return by_leaf[guess] if guess else None


def unknown_key(path: str, siblings, schema_paths: list[str] = (), where: str = "", hint: str = "") -> UserError:
    """The one-line error for a key no schema has: `unknown key 'stepz' (did you mean 'steps'?)`."""
    guess = _suggest(path, siblings, list(schema_paths))
    note = f"did you mean '{guess}'?" if guess else hint
    return UserError(f"config: unknown key '{path}'{where}" + (f" ({note})" if note else ""))


def _yaml_source(command: str, choices: dict[str, str], path: str) -> str:
    """The shipped yaml an unknown composed key came from: its group's file, else conf/<command>.yaml."""
    from omegaconf import OmegaConf

    group, _, rest = path.partition(".")
    if group in choices and rest:
        candidate = conf_dir() / group / f"{choices[group]}.yaml"
        if candidate.is_file() and OmegaConf.select(OmegaConf.load(candidate), rest) is not None:
            return str(candidate)
    return str(conf_dir() / f"{command}.yaml")


def _merge(base, other, where: Callable[[str], str]):
    """base merged with other; an unknown key or a bad value is one line (`where` names the source)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

    try:
        return OmegaConf.merge(base, other)
    except ConfigKeyError as exc:
        path, owner = getattr(exc, "full_key", None), getattr(exc, "object_type", None)
        if not path or not dataclasses.is_dataclass(owner):
            raise UserError(f"config: {_full_key_message(exc)}") from None
        siblings = [f.name for f in dataclasses.fields(owner)]
        hint = _algo_hint(path, owner)  # for an algo key: same-level guesses only, else which algorithms take it
        raise unknown_key(path, siblings, () if hint else _paths(base), where(path), hint) from None
    except OmegaConfBaseException as exc:
        raise UserError(f"config: {_full_key_message(exc)}") from None


def _algo_hint(path: str, owner) -> str:
    """For an algo.* key the chosen algorithm does not take: which algorithms do."""
    if not (path.startswith("algo.") and path.count(".") == 1 and issubclass(owner, AlgoConfig)):
        return ""
    from reasoner.algos.registry import algorithms_with_option

    name, takers = owner().name, algorithms_with_option(path.split(".", 1)[1])
    verb = "does" if len(takers) == 1 else "do"
    return f"algo={name} does not take it" + (f"; {', '.join(takers)} {verb}" if takers else "")


def _user_paths(user) -> set[str]:
    """Dotted paths of every leaf the user's overrides set (`data.num_problems`, `k`)."""
    from omegaconf import DictConfig

    out = set()
    for key in user:
        child = user._get_node(key)
        if isinstance(child, DictConfig) and len(child):
            out |= {f"{key}.{p}" for p in _user_paths(child)}
        else:
            out.add(str(key))
    return out


def _algo_name_as_choice(command: str, groups: list[str], values: list[str]) -> list[str]:
    """`algo.name=rloo` without `algo=`: start from conf/algo/rloo.yaml, as `algo=rloo` does
    (the default group's yaml holds keys another algorithm does not take)."""
    if any(g.split("=", 1)[0] == "algo" for g in groups) or "algo" not in _command_groups(command):
        return groups
    names = [v.split("=", 1)[1] for v in values if v.split("=", 1)[0] == "algo.name"]
    if names and names[-1] in group_options("algo"):
        return [*groups, f"algo={names[-1]}"]
    return groups


def _schema(command: str, raw, user):
    """The structured schema of `command`; for train-rl with the chosen algorithm's own config
    dataclass as its `algo` (algo.name as the user set it, else as the algo group's yaml says)."""
    from omegaconf import OmegaConf

    schema = SCHEMAS[command]
    if "algo" not in {f.name for f in dataclasses.fields(schema)}:
        return OmegaConf.structured(schema)
    from reasoner.algos.registry import get_algorithm

    name = OmegaConf.select(user, "algo.name", default=None) or OmegaConf.select(raw, "algo.name", default="grpo")
    return OmegaConf.structured(schema(algo=get_algorithm(str(name)).Config()))


def load(command: str, overrides: list[str]):
    """Compose and validate the config of a subcommand: returns its typed dataclass."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    groups, values = split_overrides(overrides)
    groups = _algo_name_as_choice(command, groups, values)
    choices = _check_group_choices(command, groups)
    raw = compose(command, groups)
    user = _parse_value_overrides(values)
    schema = _schema(command, raw, user)
    # Hydra marks its result struct, and the flag would lock the free-form dicts too (search.params,
    # generation.vllm); cleared, the dataclass schema is what rejects unknown keys (False would
    # switch that off as well).
    OmegaConf.set_struct(raw, None)
    merged = _merge(schema, raw, lambda path: f" in {_yaml_source(command, choices, path)}")
    merged = _merge(merged, user, lambda path: "")
    try:
        # a yaml's ??? merged into the schema keeps the schema's default, so look for it before the schema
        missing = sorted(OmegaConf.missing_keys(OmegaConf.merge(raw, user)) | OmegaConf.missing_keys(merged))
        if missing:
            raise UserError(f"config: {missing[0]} is required (add {missing[0]}=...)")
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise UserError(f"config: {_full_key_message(exc)}") from None
    check_consistency(obj, _user_paths(user))
    return obj


# --------------------------------------------------------------------------- cross-field checks


def check_consistency(cfg, user_paths: set[str]) -> None:
    """Checks one field's schema cannot make: the data options the chosen source reads, the
    chosen search method's params, decode's k against n. `user_paths` are the keys the user set
    (defaults in the yamls and the schema never count as a misapplied option)."""
    if isinstance(getattr(cfg, "data", None), DataConfig):
        check_data_options(cfg.data, {p.split(".")[1] for p in user_paths if p.startswith("data.")})
    if isinstance(cfg, DecodeConfig):
        check_search(cfg.search, cfg.sweep_methods)
        check_k(cfg, any(p == "k" or p.startswith("k.") for p in user_paths))


def check_data_options(data: DataConfig, user_keys: set[str]) -> None:
    """Each task declares the DataConfig options it reads; setting another one is an error."""
    from reasoner.tasks import TASKS

    if data.name not in TASKS:
        raise _unknown_choice("data.name", data.name, sorted(TASKS))
    task = TASKS[data.name]
    for key in sorted(user_keys - task.data_options):
        hint = task.option_hints.get(key)
        raise UserError(f"config: data.{key} does not apply to data={task.name}" + (f" ({hint})" if hint else ""))


def check_search(search: SearchConfig, sweep_methods: list[str]) -> None:
    """search.params against the chosen method's accepted params (names, pinned values, types)."""
    params = dict(search.params or {})
    if search.name == "sample" and params:
        raise UserError(f"config: unknown key 'search.params.{next(iter(params))}' (search=sample takes no "
                        "params; pick a method with --search NAME or search=NAME)")
    if search.name == "sample" and not sweep_methods:
        return
    from reasoner.search.methods import SEARCH_METHODS, check_params  # lazy: the search package loads torch

    known = ["sample", *SEARCH_METHODS]
    for name in [search.name, *sweep_methods]:
        if name not in known:
            raise _unknown_choice("search" if name == search.name else "sweep_methods entry", name, known)
    if search.name == "sample":
        return
    accepted = SEARCH_METHODS[search.name].defaults
    for key in params:
        if key not in accepted:
            raise unknown_key(f"search.params.{key}", accepted,
                              hint=f"search={search.name} takes {', '.join(sorted(accepted))}")
    try:
        check_params(search.name, params)  # pinned values, types and ranges: the registry's own rules
    except UserError as exc:
        raise UserError(f"config: {exc}") from None


def check_k(cfg: DecodeConfig, user_set_k: bool) -> None:
    """pass@k / maj@k are reported by plain sampling, for 1 <= k <= generation.n."""
    if cfg.search.name != "sample" or cfg.sweep:
        if user_set_k:
            what = "a sweep" if cfg.sweep else f"search={cfg.search.name}"
            raise UserError(f"config: k does not apply to {what} (pass@k/maj@k are reported by search=sample)")
        return
    n = cfg.generation.n
    if n < 1:
        raise UserError(f"config: generation.n must be >= 1 (got {n})")
    for k in cfg.k:
        if k < 1:
            raise UserError(f"config: k entries must be >= 1 (got k={k})")
        if k > n:
            raise UserError(f"config: k={k} is larger than generation.n={n} "
                            f"(pass@{k}/maj@{k} need at least {k} samples; raise generation.n or drop k={k})")


def to_dict(cfg) -> dict:
    """A resolved config as plain data (for run dirs and --dry-run)."""
    return dataclasses.asdict(cfg)


def to_yaml(cfg) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(to_dict(cfg)))
