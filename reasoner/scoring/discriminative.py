"""Discriminative PRMs: P(+) at each step tag, with a KV-cache of scored solution prefixes."""

from __future__ import annotations

import torch

from reasoner.prm.path_cache import PathCache, PathNode, forward_cached, gather_past, tag_cells, takes_plain_cache
from reasoner.scoring.base import batched, check_shapes, context_limit, device_of, flat_index, pad_id, split_groups


class DiscriminativeScorer:
    """P(+) at each step tag, from a PRM model (tokens head) or a ValueModel (scalar head).

    Search scores a beam's children every round: each is its parent plus one step. A tokens-head
    PRM that takes a KV cache keeps the K/V of scored solutions (`PathCache`), so a solution
    whose prefix was scored before runs only its new steps, and a round's prompts run once.
    `kv_cache_bytes` bounds that store (0: off, every solution runs in full).
    """

    def __init__(self, model, tokenizer, spec, batch_size: int = 32, kv_cache_bytes: int = 256 * 2**20):
        from reasoner.models import ValueModel
        from reasoner.prm.model import token_id

        self.model, self.tokenizer, self.spec, self.batch_size = model, tokenizer, spec, batch_size
        scalar = isinstance(model, ValueModel)
        self.pos_id = None if scalar else token_id(tokenizer, spec.positive_token, "prm.positive_token")
        self.neg_id = None if scalar else token_id(tokenizer, spec.negative_token, "prm.negative_token")
        self._cache: dict = {}
        self._paths = PathCache(kv_cache_bytes) if kv_cache_bytes > 0 and not scalar else None
        self._can_extend: bool | None = None

    def encode(self, prompt: str, steps: list[str]):
        from reasoner.prm.tokenization import encode_tagged

        return encode_tagged(self.tokenizer, prompt, steps, self.spec.step_tag, self.spec.step_separator,
                             cache=self._cache)

    @torch.inference_mode()
    def score(self, prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
        check_shapes(prompts, steps)
        if self._paths is None or not self._extendable():
            return self._score_full(prompts, steps)
        return self._score_paths(prompts, steps)

    def score_outcome(self, prompts: list[str], steps: list[list[str]]) -> list[float]:
        return [s[-1] if s else 0.0 for s in self.score(prompts, steps)]

    # ------------------------------------------------------------ full passes

    def _score_full(self, prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
        """One forward per solution over prompt + all its tagged steps."""
        from reasoner.prm.losses import step_probability
        from reasoner.prm.model import tag_logits
        from reasoner.prm.tokenization import keep_last

        limit = context_limit(self.model)
        enc = [self.encode(p, s) for p, s in zip(prompts, steps)]
        seqs, positions = [], []
        for e in enc:
            ids, cut = keep_last(e.input_ids, limit)
            seqs.append(ids)
            positions.append([max(p - cut, 0) for p in e.positions])

        def run(ids, mask, idx):
            groups = [positions[i] for i in idx]
            if not any(groups):
                return [[] for _ in idx]
            rows, cols = flat_index(groups)
            pos, neg = tag_logits(self.model, ids, mask, rows.to(ids.device), cols.to(ids.device), self.pos_id, self.neg_id)
            return split_groups(step_probability(pos, neg).cpu().tolist(), groups)

        return batched(seqs, self.batch_size, pad_id(self.tokenizer), device_of(self.model), run)

    # ------------------------------------------------ incremental (cached K/V)

    def _extendable(self) -> bool:
        """Whether the PRM's decoder takes a plain full-attention KV cache and positions."""
        if self._can_extend is None:
            self._can_extend = takes_plain_cache(self.model)
        return self._can_extend

    def _score_paths(self, prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
        """Scores from the path cache: run only what no earlier call ran (prompts once each,
        then each solution's steps after its longest scored prefix); solutions too long for the
        context go through the full pass (it cuts them on the left)."""
        from reasoner.prm.tokenization import prompt_ids

        self._paths.check(self.model)
        limit = context_limit(self.model)
        keys = list(dict.fromkeys((p, tuple(s)) for p, s in zip(prompts, steps)))
        roots = [p for p in dict.fromkeys(k[0] for k in keys) if self._paths.get((p, ())) is None]
        roots = [(p, prompt_ids(self.tokenizer, p)) for p in roots]
        made = self._extend([(None, [((p, ()), ids, False)]) for p, ids in roots if not limit or len(ids) <= limit])
        todo, full, got = [], [], {}
        for key in keys:
            node, pieces = self._plan(key, made)
            if node is None or (limit and node.length + sum(len(ids) for _, ids, _ in pieces) > limit):
                full.append(key)
            elif not pieces:
                got[key] = node.scores
            else:
                todo.append((node, pieces))
        made = self._extend(todo)
        got.update((k, made[k].scores) for k in keys if k in made)
        if full:
            got.update(zip(full, self._score_full([k[0] for k in full], [list(k[1]) for k in full])))
        return [list(got[(p, tuple(s))]) for p, s in zip(prompts, steps)]

    def _plan(self, key, made: dict):
        """(deepest scored node on the solution's path, the (key, ids, tagged) pieces after it);
        (None, []) when not even the prompt is cached."""
        from reasoner.prm.tokenization import tagged_step_ids

        prompt, steps = key
        j, node = len(steps), None
        while node is None and j >= 0:
            sub = (prompt, steps[:j])
            node = made.get(sub) or self._paths.get(sub)
            j -= 1
        if node is None:  # the prompt alone is too long for the context
            return None, []
        pieces = [((prompt, steps[:i + 1]), tagged_step_ids(self.tokenizer, steps[i], self.spec.step_tag,
                                                            self.spec.step_separator, i == 0, self._cache), True)
                  for i in range(j + 1, len(steps))]
        return node, pieces

    def _extend(self, items: list) -> dict:
        """Run (parent node or None, pieces) items in batches; a node per piece, stored and
        returned by key. Sorted by new tokens (their padding is computed, the past's is not);
        a batch takes as many rows as keep its tokens within what batch_size full solutions
        of its length would run, so a round's short tails go in one or two forwards."""
        made: dict = {}
        span = [sum(len(ids) for _, ids, _ in pieces) for _, pieces in items]
        past = [parent.length if parent else 0 for parent, _ in items]
        order = sorted(range(len(items)), key=lambda i: (span[i], past[i]))
        batch, width, most = [], 0, 0
        for i in order:
            w, t = max(width, past[i]), max(most, span[i])
            if batch and (len(batch) + 1) * t > max(1, self.batch_size) * (w + t):
                self._extend_batch([items[j] for j in batch], made)
                batch, w, t = [], past[i], span[i]
            batch.append(i)
            width, most = w, t
        if batch:
            self._extend_batch([items[j] for j in batch], made)
        return made

    def _extend_batch(self, items: list, made: dict) -> None:
        """One forward over the items' new tokens (right-padded) after their parents' K/V
        (left-padded), positions continuing each parent's."""
        from reasoner.prm.losses import step_probability
        from reasoner.prm.model import head_tag_logits

        device = device_of(self.model)
        parents = [parent for parent, _ in items]
        tails = [[t for _, ids, _ in pieces for t in ids] for _, pieces in items]
        lengths = [p.length if p else 0 for p in parents]
        width, span = max(lengths), max(len(t) for t in tails)
        ids = torch.full((len(items), span), pad_id(self.tokenizer), dtype=torch.long)
        mask = torch.zeros((len(items), width + span), dtype=torch.long)
        for r, (tail, n) in enumerate(zip(tails, lengths)):
            ids[r, :len(tail)] = torch.tensor(tail, dtype=torch.long)
            mask[r, width - n:width + len(tail)] = 1
        pos = torch.tensor(lengths)[:, None] + torch.arange(span)[None, :]
        hidden, layers = forward_cached(self.model, ids.to(device), mask.to(device), pos.to(device),
                                         gather_past(parents, width) if width else None)
        rows, cols = tag_cells(items)
        probs = []
        if rows:
            h = hidden[torch.tensor(rows), torch.tensor(cols)]
            probs = step_probability(*head_tag_logits(self.model, h, self.pos_id, self.neg_id)).cpu().tolist()
        self._store(items, layers, width, iter(probs), made)

    def _store(self, items: list, layers, width: int, probs, made: dict) -> None:
        """A node per piece, with its parent's scores plus its own and a view of its K/V in the
        row's new tokens, copied out of the batch once per row (so the batch can be freed)."""
        for r, (parent, pieces) in enumerate(items):
            end = width + sum(len(piece) for _, piece, _ in pieces)
            own = [(x.keys[r, :, width:end].clone(), x.values[r, :, width:end].clone()) for x in layers]
            node, k = parent, 0
            for key, piece, tagged in pieces:
                kv = [(keys[:, k:k + len(piece)], values[:, k:k + len(piece)]) for keys, values in own]
                scores = (node.scores if node else []) + ([next(probs)] if tagged else [])
                node = PathNode(node, kv, (node.length if node else 0) + len(piece), scores)
                self._paths.put(key, node)
                made[key] = node
                k += len(piece)
