"""In-process batched generation with transformers (the `hf` answer backend).

Questions are grouped by sampling temperature (greedy and sampled never share a batch), sorted
by prompt length, and cut into batches. Each batch runs turn 1, then turn 2 (turn 1's
conversation + the model's answer + the second user turn, re-rendered with the checkpoint's own
chat template), and is handed back as soon as both turns are done.

Prompts are encoded one at a time, without padding, each into its own KV cache; the caches are
merged into one left-padded batch cache (zeros the attention mask hides) and only decoding runs
batched. Turn 2 continues from turn 1's cache over the longest token prefix the two share (all of
turn 1's prompt and answer when the template renders the answer back to the same tokens, less when
it does not) and encodes only the rest. Models whose cache is not plain full attention per layer
(sliding windows, recurrent state) use one padded `model.generate` per batch instead.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from align.errors import UserError
from judges.questions import GREEDY_BELOW, temperature_for

log = logging.getLogger(__name__)


@dataclass
class Settings:
    max_new_token: int = 1024
    batch_size: int = 32
    seed: int = 0
    num_choices: int = 1
    dtype: str = "auto"
    cache_reuse: bool = True  # False: the plain padded path (kept for models whose cache cannot be cut and merged)


def load_tokenizer(model_path: str):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model_path)
    except (OSError, ValueError) as err:
        raise UserError(f"--model-path {model_path}: cannot load a tokenizer ({str(err).splitlines()[0]})") from None
    if not tok.chat_template:
        raise UserError(f"--model-path {model_path}: the tokenizer has no chat template; answers need the "
                        "checkpoint's own template (add one, e.g. with SFT's chat_template_path), none is guessed")
    tok.padding_side = "left"  # generation appends on the right, so prompts are aligned there
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(model_path: str, dtype: str):
    import torch
    from transformers import AutoModelForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    # Like FastChat: float32 on CPU (half precision is slow or unsupported there), the checkpoint's dtype on GPU.
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(
        dtype, "auto" if device == "cuda" else torch.float32)
    try:
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype)
    except (OSError, ValueError) as err:
        raise UserError(f"--model-path {model_path}: cannot load a causal LM ({str(err).splitlines()[0]})") from None
    return model.to(device).eval()


def stop_token_ids(model, tok) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = list(ids) if isinstance(ids, (list, tuple)) else ([ids] if ids is not None else [])
    if tok.eos_token_id is not None and tok.eos_token_id not in ids:
        ids.append(tok.eos_token_id)
    if not ids:
        raise UserError("the checkpoint defines no eos token (generation_config or tokenizer): cannot stop answers")
    return ids


def render(tok, messages: list[dict]) -> str:
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def batch_seed(seed: int, choice: int, turn: int, question_ids: list[int]) -> int:
    """A seed fixed by the batch's contents, so a re-run with the same batches samples the same text."""
    key = f"{seed}:{choice}:{turn}:{','.join(map(str, question_ids))}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little")


def generation_kwargs(tok, temperature: float, max_new_token: int, stop_ids: list[int], seed: int) -> dict:
    """`model.generate` settings for one batch; seeds the sampler when it samples."""
    from transformers import set_seed

    sample = temperature >= GREEDY_BELOW
    kwargs = dict(do_sample=sample, max_new_tokens=max_new_token, eos_token_id=stop_ids,
                  pad_token_id=tok.pad_token_id)
    if sample:
        kwargs["temperature"] = temperature
        set_seed(seed)
    else:  # the checkpoint's sampling defaults (top_p, top_k) mean nothing when greedy
        kwargs.update(temperature=None, top_p=None, top_k=None)
    return kwargs


def answer_text(tok, row: list[int], stop_ids: list[int]) -> tuple[str, int]:
    """The answer in generated tokens `row` (cut at the first stop token), and where it was cut."""
    cut = next((i for i, t in enumerate(row) if t in stop_ids), len(row))
    return tok.decode(row[:cut], skip_special_tokens=True).strip(), cut


def generate_batch(model, tok, prompts: list[str], temperature: float, max_new_token: int,
                   stop_ids: list[int], seed: int) -> list[str]:
    """One padded batch through `model.generate`; returns the decoded answers in prompt order."""
    import torch

    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    kwargs = generation_kwargs(tok, temperature, max_new_token, stop_ids, seed)
    with torch.inference_mode():
        out = model.generate(**enc, **kwargs)
    return [answer_text(tok, row, stop_ids)[0] for row in out[:, enc["input_ids"].shape[1]:].tolist()]


def cache_reuse_supported(model) -> bool:
    """Row caches can be merged and cut only when every layer is a plain growing DynamicLayer
    (no sliding windows, no recurrent state)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    try:
        layers = DynamicCache(config=model.config).layers
    except (ValueError, TypeError, AttributeError, NotImplementedError):
        return False
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def prefill_row(model, ids: list[int], prior):
    """One prompt's cache over ids[:-1] (the last token is left for `generate`), without padding.

    prior: (token ids, per-layer (keys, values)) an earlier turn left for this question, or None. Its
    cache is reused up to the longest prefix its tokens share with `ids`; only the rest is encoded.
    """
    import inspect

    import torch
    from transformers import DynamicCache

    done, cache = 0, DynamicCache()
    if prior is not None:
        seen, kv = prior
        done = min(common_prefix(seen, ids), len(ids) - 1, kv[0][0].shape[-2])
        if done:
            cache = DynamicCache([(k[..., :done, :], v[..., :done, :]) for k, v in kv])
    if done < len(ids) - 1:
        extra = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
        with torch.inference_mode():
            model(input_ids=torch.tensor([ids[done:-1]], device=model.device), past_key_values=cache,
                  use_cache=True, **extra)
    return cache, done


def roomy_layer_class():
    import torch
    from transformers.cache_utils import DynamicLayer

    class RoomyLayer(DynamicLayer):
        """One layer of the merged batch cache: the rows' caches left-padded with zeros (hidden by the
        attention mask) into a buffer with room for the new tokens. New tokens are written into the room;
        DynamicLayer concatenates instead, which copies the whole cache at every token (measured: about
        30% of batched decoding time on CPU)."""

        def __init__(self, rows: list, pads: list[int], capacity: int):
            super().__init__()
            first = rows[0].keys
            self.lazy_initialization(first, rows[0].values)
            shape = (len(rows), first.shape[1], capacity, first.shape[-1])
            self.room_k, self.room_v = first.new_zeros(shape), first.new_zeros(shape)
            width = max(row.keys.shape[-2] + pad for row, pad in zip(rows, pads))
            for i, (row, pad) in enumerate(zip(rows, pads)):
                self.room_k[i, :, pad:width] = row.keys[0]
                self.room_v[i, :, pad:width] = row.values[0]
            self.keys, self.values = self.room_k[..., :width, :], self.room_v[..., :width, :]

        def update(self, key_states, value_states, *args, **kwargs):
            n, m = self.keys.shape[-2], key_states.shape[-2]
            if n + m > self.room_k.shape[-2]:  # out of room (not expected): grow
                grow = (*self.room_k.shape[:-2], n + m, self.room_k.shape[-1])
                self.room_k = torch.cat([self.keys, self.keys.new_zeros(grow)[..., n:, :]], dim=-2)
                self.room_v = torch.cat([self.values, self.values.new_zeros(grow)[..., n:, :]], dim=-2)
            self.room_k[..., n:n + m, :] = key_states
            self.room_v[..., n:n + m, :] = value_states
            self.keys, self.values = self.room_k[..., :n + m, :], self.room_v[..., :n + m, :]
            return self.keys, self.values

    return RoomyLayer


def generate_cached(model, tok, prompts: list[list[int]], priors: list, temperature: float, max_new_token: int,
                    stop_ids: list[int], seed: int) -> tuple[list[str], list]:
    """Like `generate_batch`, but each prompt is encoded alone (no padding), reusing its `prior` cache
    where the tokens match; the row caches are merged, left-padded with zeros that the attention mask
    hides, and only decoding runs batched. Returns the answers and each row's state for the next turn."""
    import torch
    from transformers import DynamicCache

    RoomyLayer = roomy_layer_class()
    rows = [prefill_row(model, ids, prior)[0] for ids, prior in zip(prompts, priors)]
    priors.clear()  # the caller keeps no other reference: the earlier turn's cache is freed before decoding
    width = max(len(ids) for ids in prompts)
    pads = [width - len(ids) for ids in prompts]
    merged = DynamicCache()
    merged.layers = [RoomyLayer([row.layers[n] for row in rows], pads, width - 1 + max_new_token)
                     for n in range(len(rows[0].layers))]
    del rows
    input_ids = torch.tensor([[tok.pad_token_id] * pad + ids for ids, pad in zip(prompts, pads)], device=model.device)
    mask = torch.tensor([[0] * pad + [1] * len(ids) for ids, pad in zip(prompts, pads)], device=model.device)
    kwargs = generation_kwargs(tok, temperature, max_new_token, stop_ids, seed)
    with torch.inference_mode():
        out = model.generate(input_ids=input_ids, attention_mask=mask, past_key_values=merged, **kwargs)
    answers, states = [], []
    for i, (ids, pad) in enumerate(zip(prompts, pads)):
        row = out[i, width:].tolist()
        text, cut = answer_text(tok, row, stop_ids)
        answers.append(text)
        # The tokens this row's cache holds, in order (its stop token included, when it has one).
        states.append((ids + row[:cut + 1], [(layer.keys[i:i + 1, :, pad:], layer.values[i:i + 1, :, pad:])
                                             for layer in merged.layers]))
    return answers, states


def plan_batches(questions: list[dict], tok, batch_size: int) -> list[tuple[float, list[dict]]]:
    """(temperature, questions) batches: one temperature per batch, similar prompt lengths together."""
    groups: dict[float, list[dict]] = {}
    for q in questions:
        groups.setdefault(temperature_for(q.get("category", "")), []).append(q)
    batches = []
    for temperature in sorted(groups):
        qs = groups[temperature]
        lengths = {q["question_id"]: len(tok(render(tok, [{"role": "user", "content": q["turns"][0]}]),
                                             add_special_tokens=False)["input_ids"]) for q in qs}
        qs = sorted(qs, key=lambda q: (lengths[q["question_id"]], q["question_id"]))
        batches += [(temperature, qs[i:i + batch_size]) for i in range(0, len(qs), batch_size)]
    return batches


def hf_answers(model_path: str, questions: list[dict], settings: Settings) -> Iterator[tuple[dict, list[dict]]]:
    """Yield (question, choices) per question, batch by batch, as each batch's last turn finishes."""
    if not Path(model_path).exists():
        raise UserError(f"--model-path {model_path}: no such checkpoint directory")
    tok = load_tokenizer(model_path)
    model = load_model(model_path, settings.dtype)
    stop_ids = stop_token_ids(model, tok)
    reuse = settings.cache_reuse and cache_reuse_supported(model)
    batches = plan_batches(questions, tok, settings.batch_size)
    log.info("%d questions in %d batches (batch size <= %d) on %s, %s", len(questions), len(batches),
             settings.batch_size, model.device, "prompts encoded unpadded, turn 2 continuing turn 1's cache"
             if reuse else "padded prompts")
    for temperature, batch in batches:
        ids = [q["question_id"] for q in batch]
        per_choice = []
        for choice in range(settings.num_choices):
            conversations: list[list[dict]] = [[] for _ in batch]
            answers: list[list[str]] = [[] for _ in batch]
            states: list = [None for _ in batch]
            for turn in range(max(len(q["turns"]) for q in batch)):
                # Questions with fewer turns sit out the later ones.
                active = [i for i, q in enumerate(batch) if turn < len(q["turns"])]
                for i in active:
                    conversations[i].append({"role": "user", "content": batch[i]["turns"][turn]})
                prompts = [render(tok, conversations[i]) for i in active]
                seed = batch_seed(settings.seed, choice, turn, ids)
                started = time.perf_counter()
                if reuse:
                    prompt_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
                    priors, states = [states[i] for i in active], [None for _ in batch]
                    outs, new_states = generate_cached(model, tok, prompt_ids, priors, temperature,
                                                       settings.max_new_token, stop_ids, seed)
                    for i, state in zip(active, new_states):
                        states[i] = state
                else:
                    outs = generate_batch(model, tok, prompts, temperature, settings.max_new_token, stop_ids, seed)
                log.info("batch of %d (temperature %g), turn %d: %.1f s", len(prompts), temperature, turn + 1,
                         time.perf_counter() - started)
                for i, text in zip(active, outs):
                    conversations[i].append({"role": "assistant", "content": text})
                    answers[i].append(text)
            per_choice.append(answers)
        for i, q in enumerate(batch):
            yield q, [{"index": c, "turns": per_choice[c][i]} for c in range(settings.num_choices)]


def answers(args, questions: list[dict]) -> Iterator[tuple[dict, list[dict]]]:
    """`--backend hf`: the answer command's arguments -> `hf_answers`."""
    return hf_answers(args.model_path, questions, Settings(
        max_new_token=args.max_new_token, batch_size=args.batch_size, seed=args.seed,
        num_choices=args.num_choices, dtype=args.dtype))
