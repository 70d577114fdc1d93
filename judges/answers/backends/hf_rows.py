"""Continuous batching for the `hf` answer backend: rows join and leave one shared KV cache.

Each prompt is encoded alone, without padding, into its own cache (continuing an earlier turn's cache
over the longest token prefix the two share; a first turn continues the cache of the tokens every first
turn starts with, such as a chat template's system prompt, encoded once), then copied into a free row of
one batch cache and decoded with the others. The batch cache is a buffer per layer, [rows, kv heads,
columns, head dim]; every row's tokens end at the same column (`end`, where the next step writes), so a
row that started later sits further right and the columns left of its `start` are hidden by the
attention mask. A row leaves as soon as its answer ends (stop token or the token limit): the last row
moves into its place, and a waiting prompt takes the free row before the next step. Only decoding runs
batched.

The model's own forward builds the attention masks (causal, sliding window, softcapping are its
business): the cache reports full lengths, so a sliding layer sees its window exactly as in plain
generation (kv position > query position - window, counted on real tokens since each row's tokens are
contiguous). Sliding layers keep their whole history (see README: answers, sliding windows).
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field

import torch

from judges.answers.backends.hf_attention import plan_groups, use_row_groups
from judges.answers.backends.hf_common import answer_text, batch_seed, render
from judges.answers.backends.hf_internals import (
    DynamicCache,
    DynamicLayer,
    DynamicSlidingWindowLayer,
    LogitsProcessorList,
    MinPLogitsWarper,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from judges.answers.backends.hf_linear import pack_linear_layers
from judges.questions import GREEDY_BELOW, temperature_for

log = logging.getLogger(__name__)

# Cache layer kinds the batch cache can stand in for: plain attention, and sliding-window attention (its
# window is the mask's business). Anything else (recurrent state, chunked attention, ...) cannot.
REUSABLE_LAYERS = (DynamicLayer, DynamicSlidingWindowLayer)

# What one more attention call per layer costs, in key/value columns read for one row. Measured with sdpa
# on a 2-core CPU (SmolLM2's 3 KV heads of 64): about 50 us per call, 0.2 us per row-column.
GROUP_CALL_COST = 256


def cache_reuse_check(model) -> tuple[bool, str]:
    """(whether per-row caches can be cut, merged and continued for this model, why)."""
    config = model.config.get_text_config(decoder=True)
    try:
        layers = DynamicCache(config=model.config).layers
    except (ValueError, TypeError, AttributeError, NotImplementedError) as err:
        return False, f"its cache cannot be built from the config ({err})"
    odd = sorted({type(layer).__name__ for layer in layers if type(layer) not in REUSABLE_LAYERS})
    if not layers or odd:
        return False, f"cache layers {', '.join(odd) or 'none'} hold state that cannot be cut and merged"
    kinds = set(getattr(config, "layer_types", None) or [])
    if kinds - {"full_attention", "sliding_attention"} or getattr(config, "attention_chunk_size", None):
        return False, f"layer types {sorted(kinds)} include attention whose mask depends on padding"
    sliding = sum(type(layer) is DynamicSlidingWindowLayer for layer in layers)
    what = (f"{sliding} of {len(layers)} layers sliding-window ({getattr(config, 'sliding_window', None)}), "
            "kept whole; the model's mask applies the window") if sliding else "full attention"
    return True, what



def prefill_row(model, ids: list[int], prior):
    """One prompt's cache over ids[:-1] (the last token is fed by the first decoding step), without padding.

    prior: (token ids, per-layer (keys, values)) an earlier turn left for this conversation (or the shared
    first-turn prefix), or None. Its cache is reused up to the longest prefix its tokens share with
    `ids`; only the rest is encoded.
    Returns (cache, how many tokens were reused).
    """
    done, cache = 0, DynamicCache()  # plain full-history layers, also for sliding ones: the mask applies windows
    if prior is not None:
        seen, kv = prior
        done = min(len(os.path.commonprefix([seen, ids])), len(ids) - 1, kv[0][0].shape[-2])
        if done:
            cache = DynamicCache([(k[..., :done, :], v[..., :done, :]) for k, v in kv])
    if done < len(ids) - 1:
        extra = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
        with torch.inference_mode():
            model(input_ids=torch.tensor([ids[done:-1]], device=model.device), cache=cache, use_cache=True,
                  **extra)
    return cache, done


def shared_prefix(model, prompts: list[list[int]]):
    """(tokens, per-layer (keys, values)) for the tokens every prompt starts with (a chat template's
    system prompt), encoded once for all of them; None when fewer than two prompts share a token."""
    if len(prompts) < 2:
        return None
    shared = min(len(os.path.commonprefix(prompts)), min(map(len, prompts)) - 1)
    if shared < 1:
        return None
    cache, _ = prefill_row(model, prompts[0][:shared + 1], None)  # encodes all but the last id given
    return prompts[0][:shared], [(layer.keys, layer.values) for layer in cache.layers]


def sample_tokens(scores: torch.Tensor, generators: list[torch.Generator]) -> list[int]:
    """One draw per row from softmax(scores), each with its row's own generator, by inverting the
    cumulative distribution at one uniform number. torch.multinomial draws an exponential number for
    every vocabulary entry (about 1 ms per row-step for a 49k vocabulary on a CPU, a tenth of a decoding
    step's time with 20 sampled rows); this draws one. Entries of probability 0 (set to -inf by top-k or
    top-p) are never drawn: the first cumulative value above the draw belongs to a kept entry."""
    cdf = torch.softmax(scores, dim=-1).cumsum(dim=-1)
    draws = torch.stack([torch.rand((), generator=g, device=scores.device) for g in generators])
    picked = torch.searchsorted(cdf, (draws * cdf[:, -1])[:, None], right=True)
    return picked.clamp(max=scores.shape[-1] - 1).squeeze(1).tolist()


@dataclass
class Job:
    """One turn of one conversation to answer."""
    key: object
    prompt: list[int]
    prior: tuple | None  # (token ids, per-layer (keys, values)): the earlier turn's, or the shared prefix
    temperature: float
    seed: int
    keep_state: bool  # a later turn continues from this one's cache


@dataclass
class Finished:
    job: Job
    tokens: list[int]  # generated, the stop token included when there is one
    state: tuple | None  # (token ids the cache holds, per-layer (keys, values)) when job.keep_state


@dataclass
class BatchRow:
    """A job decoding in one row of the batch cache."""
    job: Job
    start: int  # column of its first cached token
    next_token: int  # fed at the next step
    generator: torch.Generator | None
    generated: list[int] = field(default_factory=list)


class BatchLayer(DynamicLayer):
    """The model's view of layer `index` of the batch cache: writes the step's keys and values at column
    `end` of every live row and returns columns [lo, end] (lo: the leftmost live row's start). A sliding
    layer returns only the columns its window can reach, and tells the mask so (like transformers'
    DynamicSlidingWindowLayer); the mask's window condition still decides which of those a query sees."""

    def __init__(self, batch: RowBatch, index: int, window: int | None):
        super().__init__()
        self.batch, self.index, self.window = batch, index, window
        self.is_sliding = window is not None
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        b = self.batch
        n, end, m = len(b.rows), b.end, key_states.shape[-2]
        keys, values = b.keys[self.index], b.values[self.index]
        keys[:n, :, end:end + m] = key_states
        values[:n, :, end:end + m] = value_states
        first = b.lo + self.get_mask_sizes(m)[1]
        return keys[:n, :, first:end + m], values[:n, :, first:end + m]

    def get_seq_length(self) -> int:
        return self.batch.end - self.batch.lo

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        seen = self.get_seq_length()
        offset = max(seen - self.window + 1, 0) if self.window else 0
        return seen + query_length - offset, offset


class RowBatch:
    """Up to `max_rows` conversations decoding together; `submit` jobs, call `step` until `busy` is False."""

    def __init__(self, model, max_rows: int, max_new_token: int, stop_ids: list[int]):
        self.model, self.max_rows, self.max_new_token = model, max_rows, max_new_token
        pack_linear_layers(model, max_rows)
        self.stop_ids = set(stop_ids)
        self.pending: deque[Job] = deque()
        self.rows: list[BatchRow] = []
        self.keys: list[torch.Tensor] = []  # per layer [max_rows, kv heads, columns, head dim]
        self.values: list[torch.Tensor] = []
        self.end = self.lo = 0
        self.cache = None
        self.warpers: dict[float, LogitsProcessorList] = {}
        self.reused: list[tuple[object, int, int]] = []  # (job key, cached tokens reused, prompt tokens)
        self.grouped = model.device.type == "cpu" and use_row_groups(model)
        self.groups: list[tuple[int, int, int]] | None = None  # attention row groups; None: plan anew

    def submit(self, job: Job, first: bool = False) -> None:
        """Queue a job; `first` puts it ahead of the others (a later turn holds its earlier turn's cache)."""
        (self.pending.appendleft if first else self.pending.append)(job)

    def busy(self) -> bool:
        return bool(self.rows or self.pending)

    def step(self) -> list[Finished]:
        """Fill free rows with waiting jobs, decode one token for every row, return the rows that ended."""
        while self.pending and len(self.rows) < self.max_rows:
            self.join(self.pending.popleft())
        if not self.rows:
            return []
        if self.end == self.keys[0].shape[-2]:
            self.relayout(self.end - self.lo, room=max(64, min(self.end - self.lo, self.max_new_token)))
        tokens = self.decode()
        done = []
        for i, (row, token) in enumerate(zip(self.rows, tokens)):
            row.generated.append(token)
            row.next_token = token
            if token in self.stop_ids or len(row.generated) >= self.max_new_token:
                done.append(i)
        return [self.leave(i) for i in reversed(done)][::-1]

    def join(self, job: Job) -> None:
        if len(job.prompt) < 2:
            raise ValueError("a rendered prompt has fewer than 2 tokens (chat templates render more)")
        row_cache, done = prefill_row(self.model, job.prompt, job.prior)
        job.prior = None  # the earlier turn's cache is freed once copied
        self.reused.append((job.key, done, len(job.prompt)))
        cached = len(job.prompt) - 1
        if not self.keys:
            self.allocate(row_cache, cached)
        elif cached > self.end:
            # Slack on the left too: the next, slightly longer conversation then fits without another copy
            # (columns left of every row's start are never read, so slack costs memory, not time).
            self.relayout(cached + max(64, cached // 4), room=max(64, min(cached, self.max_new_token)))
        i, start = len(self.rows), self.end - cached
        self.lo = min(self.lo, start)
        for n, layer in enumerate(row_cache.layers):
            self.keys[n][i, :, start:self.end] = layer.keys[0]
            self.values[n][i, :, start:self.end] = layer.values[0]
        generator = None
        if job.temperature >= GREEDY_BELOW:  # its own seeded sampler: the text does not depend on batch company
            generator = torch.Generator(device=self.model.device).manual_seed(job.seed)
        self.rows.append(BatchRow(job, start, job.prompt[-1], generator))
        self.groups = None

    def allocate(self, row_cache, cached: int) -> None:
        columns = cached + max(64, min(cached, self.max_new_token))
        for layer in row_cache.layers:
            shape = (self.max_rows, layer.keys.shape[1], columns, layer.keys.shape[-1])
            self.keys.append(layer.keys.new_zeros(shape))
            self.values.append(layer.values.new_zeros(shape))
        self.end = self.lo = cached
        windows = [getattr(layer, "sliding_window", None) for layer in DynamicCache(config=self.model.config).layers]
        self.cache = DynamicCache()
        self.cache.layers = [BatchLayer(self, n, windows[n]) for n in range(len(self.keys))]

    def relayout(self, width: int, room: int) -> None:
        """Copy the live columns [lo, end) into new buffers so they end at column `width` (>= end - lo), with
        `room` free columns after it: makes room on the left for a longer prompt, or on the right to decode.
        The copy also sorts the rows longest conversation first, so attention groups neighbours well."""
        order = sorted(range(len(self.rows)), key=lambda i: self.rows[i].start)
        self.rows = [self.rows[i] for i in order]
        self.lo = min((row.start for row in self.rows), default=self.end)
        n, live = len(self.rows), self.end - self.lo
        shift = width - self.end
        rows = torch.tensor(order, dtype=torch.long, device=self.model.device)
        for buffers in (self.keys, self.values):
            for i, old in enumerate(buffers):
                new = old.new_zeros((*old.shape[:2], width + room, old.shape[-1]))
                new[:n, :, width - live:width] = old[:, :, self.lo:self.end].index_select(0, rows)
                buffers[i] = new
        for row in self.rows:
            row.start += shift
        self.end, self.lo = width, width - live
        self.groups = None

    def decode(self) -> list[int]:
        device = self.model.device
        starts = torch.tensor([row.start for row in self.rows], device=device)
        self.lo = int(starts.min())
        mask = (torch.arange(self.lo, self.end + 1, device=device)[None, :] >= starts[:, None]).long()
        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([[row.next_token] for row in self.rows], device=device),
                             position_ids=(self.end - starts)[:, None], attention_mask=mask, cache=self.cache,
                             use_cache=True, logits_to_keep=1, **self.attention_groups())
        self.end += 1
        logits = out.logits[:, -1, :].float()
        tokens = logits.argmax(dim=-1).tolist()
        sampled: dict[float, list[int]] = {}
        for i, row in enumerate(self.rows):
            if row.generator is not None:
                sampled.setdefault(row.job.temperature, []).append(i)
        for temperature, rows in sampled.items():  # the warpers run once per temperature, over all its rows
            draws = sample_tokens(self.warper(temperature)(None, logits[rows]), [self.rows[i].generator for i in rows])
            for i, token in zip(rows, draws):
                tokens[i] = token
        return tokens

    def attention_groups(self) -> dict:
        """`row_groups` for the grouped attention (hf_attention.py), planned when rows change."""
        if not self.grouped:
            return {}
        if self.groups is None:
            self.groups = plan_groups([row.start for row in self.rows], self.end + 1, GROUP_CALL_COST)
        return {"row_groups": [(first, last, self.end + 1 - lowest) for first, last, lowest in self.groups]}

    def warper(self, temperature: float) -> LogitsProcessorList:
        """What `generate` applies when sampling: the temperature, then the checkpoint's top_k/top_p/min_p."""
        if temperature not in self.warpers:
            config = self.model.generation_config
            warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
            if config.top_k:
                warpers.append(TopKLogitsWarper(config.top_k))
            if config.top_p is not None and config.top_p < 1.0:
                warpers.append(TopPLogitsWarper(config.top_p))
            if config.min_p:
                warpers.append(MinPLogitsWarper(config.min_p))
            self.warpers[temperature] = warpers
        return self.warpers[temperature]

    def leave(self, i: int) -> Finished:
        """Take row i out of the batch: its state (if a later turn wants it), then the last row moves in."""
        row = self.rows[i]
        state = None
        if row.job.keep_state:
            kv = [(k[i:i + 1, :, row.start:self.end].clone(), v[i:i + 1, :, row.start:self.end].clone())
                  for k, v in zip(self.keys, self.values)]
            state = (row.job.prompt + row.generated[:-1], kv)  # every token fed so far: all but the last
        last = len(self.rows) - 1
        if i != last:
            moved = self.rows[last]
            for buffers in (self.keys, self.values):
                for buffer in buffers:
                    buffer[i, :, moved.start:self.end] = buffer[last, :, moved.start:self.end]
            self.rows[i] = moved
        self.rows.pop()
        self.groups = None
        return Finished(row.job, row.generated, state)


def rows_answers(model, tok, questions: list[dict], settings, stop_ids: list[int]):
    """Every (question, choice) conversation through one RowBatch; yields (question, choices) as each
    question's last turn ends. Questions are queued shortest prompt first; a later turn jumps the queue."""
    batch = RowBatch(model, settings.batch_size, settings.max_new_token, stop_ids)
    conversations: dict[tuple[int, int], list[dict]] = {}
    results: dict[tuple[int, int], dict] = {}
    open_choices = {qi: settings.num_choices for qi in range(len(questions))}

    def job(qi: int, choice: int, prior) -> Job:
        q, messages = questions[qi], conversations[qi, choice]
        turn = len(messages) // 2
        messages.append({"role": "user", "content": q["turns"][turn]})
        prompt = tok(render(tok, messages), add_special_tokens=False)["input_ids"]
        return Job((qi, choice), prompt, prior, temperature_for(q.get("category", "")),
                   batch_seed(settings.seed, choice, turn, [q["question_id"]]), turn + 1 < len(q["turns"]))

    first_turns = []
    for qi in range(len(questions)):
        for choice in range(settings.num_choices):
            conversations[qi, choice] = []
            results[qi, choice] = {"index": choice, "turns": [], "turn_tokens": []}
            first_turns.append(job(qi, choice, None))
    system = shared_prefix(model, [j.prompt for j in first_turns])
    for j in sorted(first_turns, key=lambda j: (len(j.prompt), j.key)):
        j.prior = system  # continued like an earlier turn's cache
        batch.submit(j)
    started, steps = time.perf_counter(), 0
    while batch.busy():
        steps += 1
        if steps % 256 == 0:
            log.info("step %d (%.0f s): %d rows decoding, %d prompts waiting", steps, time.perf_counter() - started,
                     len(batch.rows), len(batch.pending))
        for done in batch.step():
            qi, choice = done.job.key
            text, cut = answer_text(tok, done.tokens, stop_ids)
            conversations[qi, choice].append({"role": "assistant", "content": text})
            results[qi, choice]["turns"].append(text)
            results[qi, choice]["turn_tokens"].append(cut)
            if done.job.keep_state:
                batch.submit(job(qi, choice, done.state), first=True)
                continue
            open_choices[qi] -= 1
            if not open_choices[qi]:
                yield questions[qi], [results[qi, c] for c in range(settings.num_choices)]
    reused = sum(done for _, done, _ in batch.reused)
    log.info("%d decoding steps in %.1f s; %d prompts encoded, %d of their %d tokens taken from a cache (an "
             "earlier turn's, or the %d tokens every first turn starts with)", steps, time.perf_counter() - started,
             len(batch.reused), reused, sum(n for _, _, n in batch.reused), len(system[0]) if system else 0)
