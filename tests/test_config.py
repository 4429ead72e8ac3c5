"""Every yaml composes into its typed schema; typos and bad types fail with one line."""

from __future__ import annotations

import pytest

from reasoner import config
from reasoner.errors import UserError

REQUIRED = {"jsonl": ["data.path=x.jsonl"], "hf": ["model.name_or_path=some/dir"]}
COMMAND_REQUIRED = {"convert": ["input=a.jsonl", "output=b.jsonl"]}


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (config.conf_dir() / group).glob("*.yaml"))


@pytest.mark.parametrize("command", sorted(config.SCHEMAS))
def test_every_command_composes_with_defaults(command):
    cfg = config.load(command, COMMAND_REQUIRED.get(command, []))
    assert isinstance(cfg, config.SCHEMAS[command])


GROUP_USERS = {"model": ["train_sft", "decode", "collect", "train_prm", "eval_prm", "train_rl"],
               "data": ["train_sft", "decode", "collect", "train_prm", "eval_prm", "train_rl"],
               "search": ["decode"], "labels": ["collect"], "selection": ["collect"],
               "prm": ["train_prm", "eval_prm"], "algo": ["train_rl"]}


@pytest.mark.parametrize("group", sorted(GROUP_USERS))
def test_every_group_option_composes(group):
    assert group_options(group), f"conf/{group} is empty"
    for command in GROUP_USERS[group]:
        for option in group_options(group):
            cfg = config.load(command, [f"{group}={option}"] + REQUIRED.get(option, []))
            assert getattr(cfg, group) is not None


def test_overrides_reach_nested_fields():
    cfg = config.load("train_sft", ["model.lora.enabled=true", "optim.lr=3e-4", "model=smollm2-135m"])
    assert cfg.model.lora.enabled is True
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.model.name_or_path == "smollm2-135m"


def test_list_override():
    cfg = config.load("decode", ["k=[1,4]", "generation.n=4", "generation.stop=[\"\\n\\n\"]"])
    assert cfg.k == [1, 4]
    assert cfg.generation.stop == ["\n\n"]


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["optim.lrr=1"], "optim.lrr"),
        (["batch_size=abc"], "batch_size"),
        (["model=nosuch-group-option", "data=nosuch"], "data"),
        (["data=jsonl"], "data.path is required"),
        (["justaword"], "key=value"),
    ],
)
def test_bad_config_is_one_line_user_error(overrides, fragment):
    with pytest.raises(UserError) as info:
        config.load("train_sft", overrides)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_configs_resolve_from_the_package_dir():
    assert (config.conf_dir() / "train_sft.yaml").is_file()
