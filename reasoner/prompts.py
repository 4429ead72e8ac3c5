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
    "reasoning_gym": "Solve the problem step by step, one step per line. End with the final answer alone between "
                     "<answer> and </answer>, in the format the problem asks for, e.g. <answer>42</answer>.",
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
    templated = bool(getattr(tokenizer, "chat_template", None)) and _starts_with_special(tokenizer, text)
    return tokenizer(text, add_special_tokens=not templated)["input_ids"]


def _starts_with_special(tokenizer, text: str) -> bool:
    specials = [t for t in (tokenizer.all_special_tokens or []) if t]
    return any(text.startswith(t) for t in specials)
