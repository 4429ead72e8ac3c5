"""Loading configs: the one place that talks to Hydra (the schemas are in reasoner/schemas.py,
all importable from here too).

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
from pathlib import Path
from typing import Callable, Optional

from reasoner.errors import UserError
from reasoner.schemas import *  # noqa: F401,F403  (every schema is importable from reasoner.config)
from reasoner.schemas import SCHEMAS, AlgoConfig, DataConfig, DecodeConfig, OptimConfig, SearchConfig


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
    try:
        return OmegaConf.from_dotlist(values)
    except Exception:   # a value YAML cannot read (yaml's own errors): name the override, not a traceback
        for item in values:
            try:
                OmegaConf.from_dotlist([item])
            except Exception as exc:
                raise UserError(f"config: override '{item}': the value is not valid YAML "
                                f"({_one_line(exc).rstrip(':')}); quote list items YAML reads as symbols, "
                                "e.g. operators='[\"+\",\"*\"]'") from None
        raise


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
    if isinstance(getattr(cfg, "optim", None), OptimConfig):
        from reasoner.train.precision import check_precision

        check_precision(cfg.optim.precision)
    if getattr(cfg, "dist", None) is not None:
        from reasoner.dist import check

        check(cfg.dist)
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
    task.check_data(data)


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
