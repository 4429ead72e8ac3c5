"""Turning a Problem into the exact text sent to the model.

Chat models get their chat template (with a task instruction as the system prompt, so answers
come out in a form the grader can extract); raw models such as tiny-arith get the question as is.
"""

from __future__ import annotations

INSTRUCTIONS = {
    "gsm8k": "Solve the math problem step by step, one step per line. End with a final line 'Answer: <number>'.",
    "math500": "Solve the problem step by step, separating steps with a blank line. Put the final answer in \\boxed{}.",
    "jsonl": "Solve the problem step by step, one step per line. End with a final line 'Answer: <answer>'.",
    "arith": "Compute step by step, one operation per line as 'a op b = c'. End with 'Answer: <number>'.",
    # no example answer: a 135M model copies it ("The answer is: 42") instead of solving
    "reasoning_gym": "Solve the problem step by step, one step per line. End with the final answer alone between "
                     "<answer> and </answer> tags, in the format the problem asks for.",
}


def uses_chat_template(tokenizer, mode: str) -> bool:
    return mode != "none" and bool(getattr(tokenizer, "chat_template", None))


def build_prompt(problem_prompt: str, tokenizer, chat_template: str = "auto", system_prompt: str | None = None, task: str = "jsonl") -> str:
    """The prompt text for one problem; generation continues right after it."""
    if uses_chat_template(tokenizer, chat_template):
        system = system_prompt or INSTRUCTIONS.get(task, INSTRUCTIONS["jsonl"])
        messages = [{"role": "system", "content": system}, {"role": "user", "content": problem_prompt}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return problem_prompt if problem_prompt.endswith("\n") else problem_prompt + "\n"


def encode_prompt(tokenizer, text: str) -> list[int]:
    """Prompt token ids, the same way in training and generation.

    Text that came out of a chat template already holds its special tokens, so none are added;
    raw prompts get the tokenizer's own (e.g. a BOS) as the model saw them in pre-training.
    """
    return _encode(tokenizer, text)


def _encode(tokenizer, text: str, verbose: bool = True) -> list[int]:
    templated = bool(getattr(tokenizer, "chat_template", None)) and _starts_with_special(tokenizer, text)
    return tokenizer(text, add_special_tokens=not templated, verbose=verbose)["input_ids"]


def _starts_with_special(tokenizer, text: str) -> bool:
    specials = [t for t in (tokenizer.all_special_tokens or []) if t]
    return any(text.startswith(t) for t in specials)


# --------------------------------------------------------------------------- prompt length

ON_LONG_PROMPT = ("error", "skip", "truncate")
_POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "n_ctx")


def model_positions(model) -> int | None:
    """How many positions the model was built for (None when its config does not say)."""
    conf = getattr(model, "config", None)
    for key in _POSITION_KEYS:
        value = getattr(conf, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _token_upper_bound(text: str) -> int:
    """More tokens than any tokenizer makes of `text`, without tokenising: a token covers at least
    one UTF-8 byte except SentencePiece's word-start piece (at most one per byte), so 2 per byte,
    plus a few special tokens. Prompts under the limit by this bound are never tokenised here."""
    return 2 * len(text.encode("utf-8", "surrogatepass")) + 8


def bound_prompts(records: list, tokenizer, data_cfg, render=None, max_new_tokens: int = 0,
                  positions: int | None = None) -> list:
    """Keep every record's prompt within data.max_prompt_tokens and, when `positions` is given,
    within the model's positions less `max_new_tokens` (generation must fit after it).

    `records` have `.prompt` (the user's text) and `.where` (data.Where, or None: then `.id`
    names it); `render(prompt)` is the text as sent (the chat template), identity by default.
    A longer prompt stops with one line naming file, line and field (data.on_long_prompt=error),
    is dropped (skip) or keeps its last tokens (truncate); skips and cuts are counted in the log.
    Called before generation (and before the model loads, without `positions`), so a huge prompt
    never reaches the generator.
    """
    from dataclasses import replace

    from reasoner.errors import UserError
    from reasoner.utils.progress import log

    cap, policy = data_cfg.max_prompt_tokens, data_cfg.on_long_prompt
    if policy not in ON_LONG_PROMPT:
        raise UserError(f"config: data.on_long_prompt must be one of {', '.join(ON_LONG_PROMPT)}, got '{policy}'")
    if cap is not None and cap < 1:
        raise UserError(f"config: data.max_prompt_tokens must be >= 1 or null, got {cap}")
    room = None if positions is None else positions - max(0, max_new_tokens)
    if room is not None and room < 1:
        raise UserError(f"config: generation.max_new_tokens={max_new_tokens} leaves no room for a prompt "
                        f"in the model's {positions} positions")
    limit = min(v for v in (cap, room) if v is not None) if (cap, room) != (None, None) else None
    if limit is None:
        return list(records)
    render = render or (lambda text: text)
    out, skipped, cut = [], 0, 0
    for rec in records:
        text = render(rec.prompt)
        if _token_upper_bound(text) <= limit:
            out.append(rec)
            continue
        n, exact = _count_up_to(tokenizer, text, limit)
        if n <= limit:
            out.append(rec)
            continue
        if policy == "error":
            go_on = "set data.on_long_prompt=skip|truncate to go on"
            size = f"{n} tokens" if exact else f"more than {n} tokens ({len(text)} characters)"
            if cap is not None and n > cap:
                raise _located(rec, f"prompt is {size}, over data.max_prompt_tokens={cap} ({go_on})")
            raise _located(rec, f"prompt is {size}; with generation.max_new_tokens={max_new_tokens} that is "
                                f"over the model's {positions} positions (lower generation.max_new_tokens, or {go_on})")
        if policy == "skip":
            skipped += 1
            continue
        out.append(replace(rec, prompt=_keep_last_tokens(tokenizer, rec, render, limit)))
        cut += 1
    if records and not out:
        raise UserError(f"data.on_long_prompt=skip: all {len(records)} prompts are longer than {limit} tokens; "
                        "nothing left to run")
    if skipped or cut:
        done = f"skipped {skipped}" if skipped else f"truncated {cut}"
        log(f"data.on_long_prompt={policy}: {done} of {len(records)} prompts longer than {limit} tokens")
    return out


def bound_problems(problems: list, tokenizer, model_cfg, data_cfg, max_new_tokens: int = 0, model=None) -> list:
    """bound_prompts for Problems, whose prompts are sent through build_prompt; with `model`,
    prompt + max_new_tokens must also fit the model's positions."""
    def render(text: str) -> str:
        return build_prompt(text, tokenizer, model_cfg.chat_template, model_cfg.system_prompt, data_cfg.name)

    positions = model_positions(model) if model is not None else None
    return bound_prompts(problems, tokenizer, data_cfg, render, max_new_tokens, positions)


def _count_up_to(tokenizer, text: str, limit: int) -> tuple[int, bool]:
    """(tokens, exact): the exact count of a prompt near the limit; for a much longer one, the
    count of a start of it that is already over the limit (a lower bound), so a huge prompt
    costs tokenising a few times `limit` characters, not all of it."""
    size = 8 * (limit + 8)
    while size < len(text):
        n = len(_encode(tokenizer, text[:size], verbose=False))
        if n > limit + 2:        # cutting the text mid-word changes the count by a token or two
            return n - 2, False
        size *= 4
    return len(_encode(tokenizer, text, verbose=False)), True


def _located(rec, message: str):
    from reasoner.errors import UserError

    where = getattr(rec, "where", None)
    return where.error(message) if where is not None else UserError(f"record '{rec.id}': {message}")


def _keep_last_tokens(tokenizer, rec, render, limit: int) -> str:
    """The end of rec.prompt that, as sent, is at most `limit` tokens (the question and the
    generation prompt sit at the end)."""
    text = rec.prompt
    overhead = len(_encode(tokenizer, render("x"), verbose=False)) - len(_encode(tokenizer, "x", verbose=False))
    keep = limit - max(0, overhead)
    size = 8 * (limit + 8)      # the end of a huge prompt is tokenised, not all of it
    fast = bool(getattr(tokenizer, "is_fast", False))   # offsets cut the text exactly; else decode
    while True:
        tail = text[-size:]
        enc = tokenizer(tail, add_special_tokens=False, return_offsets_mapping=fast, verbose=False)
        if len(enc["input_ids"]) > keep + 2 or size >= len(text):
            break
        size *= 4
    ids = enc["input_ids"]
    keep = min(keep, len(ids) - 1)
    while keep > 0:
        piece = tail[enc["offset_mapping"][-keep][0]:] if fast else tokenizer.decode(ids[-keep:])
        n = len(_encode(tokenizer, render(piece), verbose=False))
        if n <= limit and piece.strip():
            return piece
        keep -= max(1, n - limit)
    raise _located(rec, f"cannot be truncated to {limit} tokens: the prompt around it (template, system "
                        "prompt) is longer; raise data.max_prompt_tokens")
