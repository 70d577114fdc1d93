"""In-process generation with transformers (the `hf` answer backend), three engines:

- `align` (default where the model's cache allows it): continuous batching over unpadded prompts
  (judges/answers/backends/hf_rows.py). Every prompt is encoded alone into its own KV cache and joins a shared
  batch cache for decoding; an answer leaves the batch the step it ends and a waiting prompt takes its
  row. Turn 2 continues turn 1's cache over the longest token prefix the two renderings share (turn 1's
  prompt and answer when the template renders the answer back to the same tokens), so only the new user
  turn is encoded; a finished turn 1 queues its turn 2 ahead of new questions. Sliding-window models
  (Gemma 2/3, Mistral, Qwen2 with a window) run here too: the model's own masks apply the window.
- `generate_batch`: transformers' own continuous batching (paged attention), turn by turn; every turn
  re-encodes its whole conversation.
- padded: one left-padded `model.generate` per batch of similar-length questions, for models whose cache
  cannot be cut and merged (recurrent state, chunked attention), or with `Settings.cache_reuse=False`.
  `auto` also runs it when the transformers internals `align` relies on are missing or changed, or the
  installed transformers is outside the versions `align` was tested on (judges/answers/backends/hf_internals.py).

Imports run one way: this module -> the engines -> hf_common / hf_internals.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from align.plumbing.errors import UserError
from judges.answers.backends import hf_internals
from judges.answers.backends.hf_cb import cb_answers
from judges.answers.backends.hf_common import answer_text, batch_seed, render
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
    engine: str = "auto"  # auto | align | generate_batch (see the module docstring and ENGINE_AUTO)


ENGINES = ("auto", "align", "generate_batch")


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


def generate_padded(model, tok, prompts: list[str], temperature: float, max_new_token: int,
                    stop_ids: list[int], seed: int) -> list[tuple[str, int]]:
    """One padded batch through `model.generate`; returns (answer, generated tokens) in prompt order."""
    import torch

    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    kwargs = generation_kwargs(tok, temperature, max_new_token, stop_ids, seed)
    with torch.inference_mode():
        out = model.generate(**enc, **kwargs)
    return [answer_text(tok, row, stop_ids) for row in out[:, enc["input_ids"].shape[1]:].tolist()]


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


def choose_engine(model, settings: Settings) -> tuple[str, str]:
    """(engine, why): the one decision, logged once per run."""
    if settings.engine == "generate_batch":
        return "generate_batch", "asked for (--hf-engine generate_batch)"
    if not settings.cache_reuse:
        return "padded", "cache reuse switched off"
    broken = hf_internals.library_problem()
    if broken:
        return without_align(settings, broken)
    untested = hf_internals.version_problem()
    if untested and settings.engine == "auto":
        return "padded", f"{untested} (--hf-engine align runs it anyway)"
    # Imported only now: it subclasses the transformers internals probed above, which may be missing.
    from judges.answers.backends.hf_rows import cache_reuse_check

    reusable, why = cache_reuse_check(model)
    if not reusable:
        if settings.engine == "align":
            raise UserError(f"--hf-engine align: this model cannot use it: {why}")
        return "padded", why
    broken = hf_internals.model_problem(model)
    if broken:
        return without_align(settings, broken)
    return "align", f"{why}; {untested}, asked for anyway" if untested else why


def without_align(settings: Settings, broken: str) -> tuple[str, str]:
    """An internal the align engine needs is missing or changed: padded for `auto`, a refusal when asked for."""
    if settings.engine == "align":
        raise UserError(f"--hf-engine align: cannot run with this transformers: {broken}")
    return "padded", f"the align engine cannot run: {broken}"


def hf_answers(model_path: str, questions: list[dict], settings: Settings) -> Iterator[tuple[dict, list[dict]]]:
    """Yield (question, choices) per question as its last turn finishes. Each choice carries
    `turn_tokens` (generated tokens per turn, stop token excluded) for the length record."""
    if not Path(model_path).exists():
        raise UserError(f"--model-path {model_path}: no such checkpoint directory")
    tok = load_tokenizer(model_path)
    model = load_model(model_path, settings.dtype)
    stop_ids = stop_token_ids(model, tok)
    engine, why = choose_engine(model, settings)
    log.info("%d questions on %s (%s attention): %s engine, %s", len(questions), model.device,
             hf_internals.attention_implementation(model), engine, why)
    if engine == "align":
        from judges.answers.backends.hf_rows import rows_answers  # see choose_engine

        yield from rows_answers(model, tok, questions, settings, stop_ids)
    elif engine == "generate_batch":
        yield from cb_answers(model, tok, questions, settings, stop_ids)
    else:
        yield from padded_answers(model, tok, questions, settings, stop_ids)


def padded_answers(model, tok, questions: list[dict], settings: Settings, stop_ids: list[int]):
    """One left-padded `model.generate` per batch and turn; turn 2 re-encodes the whole conversation."""
    batches = plan_batches(questions, tok, settings.batch_size)
    for temperature, batch in batches:
        ids = [q["question_id"] for q in batch]
        per_choice = []
        for choice in range(settings.num_choices):
            conversations: list[list[dict]] = [[] for _ in batch]
            answers: list[list[str]] = [[] for _ in batch]
            lengths: list[list[int]] = [[] for _ in batch]
            for turn in range(max(len(q["turns"]) for q in batch)):
                # Questions with fewer turns sit out the later ones.
                active = [i for i, q in enumerate(batch) if turn < len(q["turns"])]
                for i in active:
                    conversations[i].append({"role": "user", "content": batch[i]["turns"][turn]})
                prompts = [render(tok, conversations[i]) for i in active]
                seed = batch_seed(settings.seed, choice, turn, ids)
                started = time.perf_counter()
                outs = generate_padded(model, tok, prompts, temperature, settings.max_new_token, stop_ids, seed)
                log.info("batch of %d (temperature %g), turn %d: %.1f s", len(prompts), temperature, turn + 1,
                         time.perf_counter() - started)
                for i, (text, n) in zip(active, outs):
                    conversations[i].append({"role": "assistant", "content": text})
                    answers[i].append(text)
                    lengths[i].append(n)
            per_choice.append((answers, lengths))
        for i, q in enumerate(batch):
            yield q, [{"index": c, "turns": per_choice[c][0][i], "turn_tokens": per_choice[c][1][i]}
                      for c in range(settings.num_choices)]


def answers(args, questions: list[dict]) -> Iterator[tuple[dict, list[dict]]]:
    """`--backend hf`: the answer command's arguments -> `hf_answers`."""
    return hf_answers(args.model_path, questions, Settings(
        max_new_token=args.max_new_token, batch_size=args.batch_size, seed=args.seed,
        num_choices=args.num_choices, dtype=args.dtype, engine=getattr(args, "hf_engine", "auto")))
