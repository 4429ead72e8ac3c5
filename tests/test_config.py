"""Every yaml composes into its typed schema; typos and bad types fail with one line."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from reasoner import config
from reasoner.errors import UserError

REQUIRED = {"jsonl": ["data.path=x.jsonl"], "reasoning_gym": ["data.task=basic_arithmetic"], "hf": ["model.name_or_path=some/dir"]}
COMMAND_REQUIRED = {"convert": ["input=a.jsonl", "output=b.jsonl"]}


group_options = config.group_options


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
        (["model=nosuch-group-option"], "model"),
        (["data=nosuch"], "data"),
        (["data=jsonl"], "data.path is required"),
        (["justaword"], "key=value"),
        (["optim.betas=[*,1]"], "override 'optim.betas=[*,1]': the value is not valid YAML"),   # yaml's own error
        (["data.num_problems=[1"], "override 'data.num_problems=[1'"),
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


# --------------------------------------------------------------------------- strict at every level


@pytest.mark.parametrize(
    "command, override, message",
    [
        ("train_rl", "stepz=3", "config: unknown key 'stepz' (did you mean 'steps'?)"),
        ("train_sft", "max_step=1", "config: unknown key 'max_step' (did you mean 'max_steps'?)"),
        ("decode", "nn=4", "config: unknown key 'nn' (did you mean 'generation.n'?)"),
        ("decode", "foo=1", "config: unknown key 'foo'"),
        ("train_sft", "prompts_per_step=4", "config: unknown key 'prompts_per_step'"),  # a train-rl key
        ("train_sft", "optim.lrr=1", "config: unknown key 'optim.lrr' (did you mean 'optim.lr'?)"),
        ("train_sft", "model.lora.rr=4", "config: unknown key 'model.lora.rr' (did you mean 'model.lora.r'?)"),
        ("train_rl", "algo.eps_hgh=0.3", "config: unknown key 'algo.eps_hgh' (did you mean 'algo.eps_high'?)"),
        ("train_sft", "lr=1e-4", "config: unknown key 'lr' (did you mean 'optim.lr'?)"),
        ("decode", "scorer.prm.betta=1", "config: unknown key 'scorer.prm.betta' (did you mean 'scorer.prm.beta'?)"),
    ],
)
def test_unknown_key_at_any_level_is_an_error_with_a_suggestion(command, override, message):
    with pytest.raises(UserError) as info:
        config.load(command, [override])
    assert str(info.value) == message


@pytest.mark.parametrize("command", ["train_sft", "train_prm", "train_rl"])
def test_every_training_command_takes_the_sink_keys(command):
    cfg = config.load(command, ["tensorboard=true", "wandb=true"])
    assert cfg.tensorboard is True and cfg.wandb is True


def test_unknown_key_in_a_group_yaml_names_the_file(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    shutil.copytree(config.conf_dir(), conf)
    dapo = conf / "algo" / "dapo.yaml"
    dapo.write_text(dapo.read_text().replace("eps_high:", "eps_hgh:"))
    monkeypatch.setattr(config, "conf_dir", lambda: conf)
    with pytest.raises(UserError) as info:
        config.load("train_rl", ["algo=dapo"])
    assert str(info.value) == f"config: unknown key 'algo.eps_hgh' in {dapo} (did you mean 'algo.eps_high'?)"


def test_free_form_dicts_stay_free():
    cfg = config.load("decode", ["generation.vllm.max_model_len=2048", "generation.vllm.enforce_eager=true",
                                 "search=beam", "search.params.width=2"])
    assert cfg.generation.vllm == {"max_model_len": 2048, "enforce_eager": True}
    assert cfg.search.params["width"] == 2


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["search=beam", "search.params.widht=2"],
         "config: unknown key 'search.params.widht' (did you mean 'search.params.width'?)"),
        (["search=mcts", "search.params.rollout=4"],
         "config: unknown key 'search.params.rollout' (did you mean 'search.params.rollouts'?)"),
        (["search.params.width=2"], "config: unknown key 'search.params.width' (search=sample takes no params; "
                                    "pick a method with --search NAME or search=NAME)"),
        (["search=beam", "search.params.width=x"], "config: search.params.width: expected int for search 'beam', got 'x'"),
        (["search=prm_min_max", "search.params.agg=last"], "config: search.params.agg: search 'prm_min_max' fixes agg=min"),
        (["search.name=beem"], "config: unknown search 'beem' (did you mean 'beam'?)"),
        (["sweep=[1,2]", "sweep_methods=[majoriti]"], "config: unknown sweep_methods entry 'majoriti' (did you mean 'majority'?)"),
    ],
)
def test_search_params_are_checked_when_the_config_loads(overrides, message):
    with pytest.raises(UserError) as info:
        config.load("decode", overrides)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "command, override, message",
    [
        ("train_rl", "algo=grpoo", "config: unknown algo 'grpoo' (did you mean 'grpo'?)"),
        ("decode", "search=beem", "config: unknown search 'beem' (did you mean 'beam'?)"),
        ("decode", "data=gsm8kk", "config: unknown data 'gsm8kk' (did you mean 'gsm8k'?)"),
        ("train_prm", "prm=implict", "config: unknown prm 'implict' (did you mean 'implicit'?)"),
        ("train_sft", "algo=dapo", "config: unknown key 'algo' (train-sft has no algo choice)"),
    ],
)
def test_group_choice_typo_is_an_error_with_a_suggestion(command, override, message):
    with pytest.raises(UserError) as info:
        config.load(command, [override])
    assert str(info.value) == message


def test_group_choices_still_compose():
    cfg = config.load("train_rl", ["model=smollm2-135m", "data=gsm8k", "algo=dapo"])
    assert (cfg.model.name_or_path, cfg.data.name, cfg.algo.dynamic_sampling) == ("smollm2-135m", "gsm8k", True)
    assert config.load("decode", ["search=beam"]).search.params["width"] == 4


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["k=[1,8]"], "config: k=8 is larger than generation.n=1 (pass@8/maj@8 need at least 8 samples; "
                      "raise generation.n or drop k=8)"),
        (["k=[0,1]"], "config: k entries must be >= 1 (got k=0)"),
        (["generation.n=0"], "config: generation.n must be >= 1 (got 0)"),
        (["search=majority", "generation.n=8", "k=[1,8]"],
         "config: k does not apply to search=majority (pass@k/maj@k are reported by search=sample)"),
    ],
)
def test_decode_k_must_fit_the_samples(overrides, message):
    with pytest.raises(UserError) as info:
        config.load("decode", overrides)
    assert str(info.value) == message


def test_decode_k_up_to_n_is_fine():
    assert config.load("decode", ["k=[1,8]", "generation.n=8"]).k == [1, 8]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data=jsonl", "data.path=some.jsonl", "data.num_problems=10"],
         "config: data.num_problems does not apply to data=jsonl (it reads every record; use data.limit)"),
        (["data=gsm8k", "data.min_ops=3"], "config: data.min_ops does not apply to data=gsm8k (an arith gym generator setting)"),
        (["data=math500", "data.corrupt_fraction=0.1"],
         "config: data.corrupt_fraction does not apply to data=math500 (an arith gym generator setting)"),
        (["data=jsonl", "data.path=x.jsonl", "data.misconception_rate=0.2"],
         "config: data.misconception_rate does not apply to data=jsonl (an arith gym generator setting)"),
        (["data.prompt_field=question"],
         "config: data.prompt_field does not apply to data=arith (the gym generates its problems; data=FILE.jsonl reads a file)"),
        (["data.path=x.jsonl"],
         "config: data.path does not apply to data=arith (the gym generates its problems; data=FILE.jsonl reads a file)"),
        (["data.name=gsm"], "config: unknown data.name 'gsm' (did you mean 'gsm8k'?)"),
    ],
)
def test_data_option_the_source_does_not_read_is_an_error(overrides, message):
    with pytest.raises(UserError) as info:
        config.load("decode", overrides)
    assert str(info.value) == message


def test_data_options_the_source_reads_are_fine():
    gym = config.load("train_sft", ["data.num_problems=10", "data.misconception_rate=0.2", "data.misconception_ops=+",
                                    "data.limit=5", "data.seed=3"])
    assert (gym.data.num_problems, gym.data.misconception_rate, gym.data.misconception_ops) == (10, 0.2, "+")
    # decode.yaml's own data.num_problems is a default, not the user's: a jsonl source takes it
    cfg = config.load("decode", ["data=jsonl", "data.path=x.jsonl", "data.prompt_field=q", "data.limit=3"])
    assert (cfg.data.prompt_field, cfg.data.limit) == ("q", 3)


def test_every_data_option_is_read_by_some_task():
    from reasoner.tasks import TASKS

    fields = {f.name for f in dataclasses.fields(config.DataConfig)}
    declared = set().union(*(t.data_options for t in TASKS.values()))
    assert declared == fields
    assert config.DataConfig().misconception_rate == 0.0 and config.DataConfig().misconception_ops == "+-"


@pytest.mark.parametrize("algo", ["rft", "dpo", "oreo"])
def test_offline_algorithms_train_whole_epochs_unless_steps_is_given(algo):
    """The online default steps=100 once capped a full-size OREO epoch at a quarter of its data."""
    assert config.load("train_rl", [f"algo={algo}"]).steps == 0
    assert config.load("train_rl", [f"algo={algo}", "steps=7"]).steps == 7
    assert config.load("train_rl", ["algo=grpo"]).steps == 100
