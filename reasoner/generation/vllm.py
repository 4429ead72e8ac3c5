"""The vLLM backend: the same `Generator` contract as the HF backend, on vLLM's engine.

This is the only module that imports vllm (an optional extra), so the rest of reasoner runs
without it. Weights always come from a local Hugging Face directory (see
`factory.build_generator`, which exports in-memory / GGUF / LoRA models to one first).

Contract details, matched to `HFGenerator`:
- prompts are encoded with our own tokenizer (`encode_prompt`) and handed to vLLM as token
  ids, so both backends see exactly the ids training saw;
- logprobs are those of the sampled tokens under the raw model (vLLM `logprobs_mode=
  "raw_logprobs"`: before temperature / top_p), one per generated token;
- with a seed, request i's k-th sample uses seed + i * n + k (vLLM derives the k from the
  request seed), so duplicate prompts still get different samples and a call is reproducible;
- the engine runs in this process by default (`in_process=True`: no `__main__` guard needed,
  and `update_weights` hands tensors over without serialising them). vLLM's CPU worker then
  pins this process's OpenMP threads and makes `torch.set_num_threads` a no-op. With
  `in_process=False` the engine runs in its own process (under the launcher: vLLM's own
  process group would otherwise have to be created by every rank) and weights are handed
  over as a safetensors file that the worker reloads in place.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable

import torch

from reasoner.errors import UserError
from reasoner.generation.base import Completion, SamplingParams, check_params, sequence_seed
from reasoner.prompts import encode_prompt

INSTALL_HINT = "install the vllm extra: pip install 'reasoner[vllm]' (GPU) or run scripts/vllm_env.sh (CPU build)"
CPU_KV_CACHE_BYTES = 1 << 30  # vLLM's CPU default reserves 92% of RAM; 1 GiB holds ~23k SmolLM2 tokens
CPU_MIN_BATCHED_TOKENS = 8192  # tokens per engine step on CPU when prefills are not chunked


def import_vllm():
    """The vllm module, or a one-line UserError saying how to get it."""
    try:
        import vllm
    except ImportError as err:
        raise UserError(f"generation.backend=vllm needs vllm, which is not importable ({err}); {INSTALL_HINT}") from None
    return vllm


class VLLMGenerator:
    """`Generator` over a `vllm.LLM` built from a local HF model directory.

    dtype: "auto" keeps the checkpoint's dtype ("float32", "bfloat16", ... also accepted).
    On CPU, unless `gpu_memory_utilization` or `kv_cache_memory_bytes` is given, the KV cache
    gets `CPU_KV_CACHE_BYTES` (vLLM's own CPU default wants 92% of the machine's memory free).
    `ignore_eos` keeps decoding past EOS (benchmarks want a fixed token count).
    Extra keyword arguments go to `vllm.LLM` unchanged (e.g. enforce_eager, max_num_seqs).
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        tokenizer=None,
        dtype: str = "auto",
        seed: int = 0,
        gpu_memory_utilization: float | None = None,
        max_model_len: int | None = None,
        enable_prefix_caching: bool = True,
        in_process: bool = True,
        ignore_eos: bool = False,
        kv_cache_memory_bytes: int | None = None,
        **engine_kwargs,
    ):
        vllm = import_vllm()
        model_dir = os.fspath(model_dir)
        if not os.path.isfile(os.path.join(model_dir, "config.json")):
            raise UserError(f"vllm backend: '{model_dir}' is not a Hugging Face model directory (no config.json)")
        self.model_dir = model_dir
        self.tokenizer = tokenizer if tokenizer is not None else _load_tokenizer(model_dir)
        self.ignore_eos = ignore_eos
        self.in_process = in_process
        on_cpu = _on_cpu()
        if on_cpu:
            _check_cpu_head_size(model_dir)
        kwargs = dict(engine_kwargs)
        if gpu_memory_utilization is not None:
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        if kv_cache_memory_bytes is not None:
            kwargs["kv_cache_memory_bytes"] = int(kv_cache_memory_bytes)
        elif gpu_memory_utilization is None and on_cpu:
            kwargs["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
        if max_model_len is not None:
            kwargs["max_model_len"] = int(max_model_len)
        if on_cpu and "enable_chunked_prefill" not in kwargs:
            # A chunked prefill rewinds the request's seeded torch.Generator, which CPU
            # generators cannot do ("CPU Generator does not use offset"): seeded calls larger
            # than one step's token budget would crash. Whole prefills need a budget >= the context.
            kwargs["enable_chunked_prefill"] = False
            context = int(max_model_len or _max_positions(model_dir) or 0)
            kwargs.setdefault("max_num_batched_tokens", max(CPU_MIN_BATCHED_TOKENS, context))
        if in_process:
            kwargs.setdefault("distributed_executor_backend", "uni")
        with _env("VLLM_ENABLE_V1_MULTIPROCESSING", "0" if in_process else None):
            self.llm = vllm.LLM(
                model=model_dir,
                tokenizer=model_dir,
                dtype=dtype,
                seed=seed,
                enable_prefix_caching=enable_prefix_caching,
                logprobs_mode="raw_logprobs",
                trust_remote_code=False,
                **kwargs,
            )
        self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)

    # ------------------------------------------------------------------ public

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        """result[i] holds params.n completions of prompts[i], in order."""
        check_params(params)
        if not prompts:
            return []
        encoded = [encode_prompt(self.tokenizer, text) for text in prompts]
        for i, ids in enumerate(encoded):
            if not ids:
                raise ValueError("a prompt encodes to no tokens; give it some text or a BOS token")
            if len(ids) >= self.max_model_len:
                raise ValueError(f"prompt {i} has {len(ids)} tokens, no room left in max_model_len={self.max_model_len}")
        if params.max_new_tokens == 0:
            return [[Completion("", [], [], "length") for _ in range(params.n)] for _ in prompts]
        requests = [{"prompt_token_ids": ids} for ids in encoded]
        sampling = [self._vllm_params(params, i, len(ids)) for i, ids in enumerate(encoded)]
        outputs = self.llm.generate(requests, sampling, use_tqdm=False)
        result = [[_completion(o) for o in _ordered(out.outputs)] for out in outputs]
        if params.temperature == 0 and params.n > 1:  # vLLM refuses greedy n > 1: all n are equal anyway
            result = [[copy.deepcopy(r[0]) for _ in range(params.n)] for r in result]
        return result

    def update_weights(self, model) -> None:
        """Copy an in-memory torch model's weights into the engine (online RL weight sync).

        PEFT models are merged on the fly (the model itself is left as it was); the prefix
        cache is cleared, since cached KV belongs to the old weights.
        """
        self.load_weights(named_weights(model))

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Load (HF name, tensor) pairs into the running model; names as in the checkpoint."""
        weights = [(name, t.detach()) for name, t in weights]
        # the worker's in-place reload re-runs the loader's post-processing (e.g. the CPU
        # backend's repacked linear weights), which a bare model.load_weights would skip
        if self.in_process:
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
        else:  # tensors do not cross the engine's process boundary as tensors: hand over a file
            self.llm.collective_rpc("reload_weights", kwargs={"weights_path": self._write_weights(weights),
                                                              "is_checkpoint_format": True})
        self.llm.reset_prefix_cache()

    def _write_weights(self, weights) -> str:
        """The weights as one safetensors file in this generator's own directory (replaced each sync)."""
        import shutil
        import tempfile
        import weakref

        from safetensors.torch import save_file

        if getattr(self, "_sync_dir", None) is None:
            self._sync_dir = tempfile.mkdtemp(prefix="reasoner-vllm-sync-")
            weakref.finalize(self, shutil.rmtree, self._sync_dir, True)
        # tied weights share storage, which safetensors refuses: each tensor is written as its own copy
        save_file({name: t.to("cpu", copy=True).contiguous() for name, t in weights},
                  os.path.join(self._sync_dir, "model.safetensors"))
        return self._sync_dir

    def close(self) -> None:
        """Shut the engine down and free its memory (also happens at interpreter exit)."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is None:
            return
        engine = getattr(llm, "llm_engine", None)
        shutdown = getattr(engine, "shutdown", None) or getattr(getattr(engine, "engine_core", None), "shutdown", None)
        if shutdown is not None:
            shutdown()

    # ----------------------------------------------------------------- helpers

    def _vllm_params(self, params: SamplingParams, index: int, prompt_len: int):
        from vllm import SamplingParams as VSamplingParams

        return VSamplingParams(
            n=1 if params.temperature == 0 else params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=min(params.max_new_tokens, self.max_model_len - prompt_len),
            stop=list(params.stop) or None,
            seed=(sequence_seed(params.prompt_seeds[index], 0) if params.prompt_seeds is not None
                  else None if params.seed is None else int(params.seed) + index * params.n),
            logprobs=0,
            flat_logprobs=True,
            ignore_eos=self.ignore_eos,
            skip_special_tokens=True,
            include_stop_str_in_output=False,
        )


def named_weights(model) -> list[tuple[str, torch.Tensor]]:
    """(checkpoint name, tensor) of a plain or PEFT causal LM, LoRA merged in, as saved by
    `save_pretrained` (so vLLM's loader recognises the names)."""
    from reasoner.models import is_peft, plain_copy, unwrap

    model = unwrap(model)
    if is_peft(model):
        model = plain_copy(model, merge=True)
    return list(model.state_dict().items())


def _completion(out) -> Completion:
    """A vLLM CompletionOutput as our Completion (stop_reason: the string, or None)."""
    ids = list(out.token_ids)
    stop_reason = out.stop_reason if isinstance(out.stop_reason, str) else None
    finish = "length" if out.finish_reason == "length" else "stop"
    if out.finish_reason not in ("length", "stop"):
        raise RuntimeError(f"vLLM request ended with finish_reason={out.finish_reason!r}")
    return Completion(out.text, ids, _sampled_logprobs(out.logprobs, ids), finish, stop_reason)


def _sampled_logprobs(logprobs, ids: list[int]) -> list[float]:
    """The logprob of each sampled token, from vLLM's flat or per-position dict format."""
    if logprobs is None:
        raise RuntimeError("vLLM returned no logprobs although they were requested")
    if hasattr(logprobs, "start_indices"):  # FlatLogprobs
        out = []
        for pos, tok in enumerate(ids):
            lo, hi = logprobs.start_indices[pos], logprobs.end_indices[pos]
            k = next(k for k in range(lo, hi) if logprobs.token_ids[k] == tok)
            out.append(float(logprobs.logprobs[k]))
        return out
    return [float(pos[tok].logprob) for pos, tok in zip(logprobs, ids)]


def _ordered(outputs):
    return sorted(outputs, key=lambda o: o.index)


def _load_tokenizer(model_dir: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def _model_config(model_dir: str) -> dict:
    """config.json of a model directory (a multimodal config: its text part)."""
    import json

    with open(os.path.join(model_dir, "config.json")) as fh:
        conf = json.load(fh)
    return conf.get("text_config") or conf


def _max_positions(model_dir: str) -> int | None:
    """The model's context length (None when its config does not say)."""
    value = _model_config(model_dir).get("max_position_embeddings")
    return int(value) if value else None


def _check_cpu_head_size(model_dir: str) -> None:
    """vLLM's CPU attention kernels exist for a few head sizes only; say so before the engine
    dies on its first batch."""
    from reasoner.models import attention_head_size

    try:
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        supported = CPUAttentionBackend.get_supported_head_sizes()
    except (ImportError, AttributeError):  # another vLLM layout: let vLLM decide
        return
    head = attention_head_size(_model_config(model_dir))
    if head is not None and head not in supported:
        raise UserError(
            f"vllm backend: {model_dir} has attention head size {head}; vLLM's CPU kernels support "
            f"{', '.join(map(str, supported))} (use generation.backend=hf for this model)"
        )


class _env:
    """Set (or leave alone, for None) one environment variable for a block, then restore it."""

    def __init__(self, name: str, value: str | None):
        self.name, self.value, self.old = name, value, None

    def __enter__(self):
        if self.value is not None:
            self.old = os.environ.get(self.name)
            os.environ[self.name] = self.value

    def __exit__(self, *exc):
        if self.value is not None:
            if self.old is None:
                os.environ.pop(self.name, None)
            else:
                os.environ[self.name] = self.old
