"""transformers' own continuous batching (`model.generate_batch`, paged attention) as an `hf` engine.

`--hf-engine generate_batch`. One `generate_batch` call per turn and temperature over every question;
turn 2 re-encodes its whole conversation (no turn-1 cache to continue). Kept as the baseline the
`align` engine is measured against, and for GPUs, where its paged attention is built to shine (see README).
"""

from __future__ import annotations

import logging
import time
from math import ceil

from transformers import GenerationConfig, set_seed

from judges.answers.backends.hf_common import answer_text, batch_seed, render
from judges.questions import GREEDY_BELOW, temperature_for

log = logging.getLogger(__name__)


def cb_generate(model, tok, prompts: list[list[int]], temperature: float, max_new_token: int,
                stop_ids: list[int], seed: int) -> list[list[int]]:
    """Generated tokens per prompt, in prompt order."""
    sample = temperature >= GREEDY_BELOW
    config = GenerationConfig(max_new_tokens=max_new_token, do_sample=sample, eos_token_id=stop_ids,
                              pad_token_id=tok.pad_token_id, **({"temperature": temperature} if sample else {}))
    if sample:
        set_seed(seed)
    on_gpu = model.device.type == "cuda"
    # Its warm-up pre-captures CUDA graphs; on a CPU it only costs time (about 45 s per call, measured).
    paged = None if on_gpu else cpu_cache_config(prompts, max_new_token)
    outputs = model.generate_batch(inputs=prompts, generation_config=config, warmup=on_gpu,
                                   continuous_batching_config=paged)
    if len(outputs) != len(prompts) or any(out.error for out in outputs.values()):
        raise RuntimeError("generate_batch lost or failed requests: "
                           + "; ".join(str(out.error) for out in outputs.values() if out.error))
    return [out.generated_tokens for out in outputs.values()]


def cpu_cache_config(prompts: list[list[int]], max_new_token: int):
    """A paged cache as large as these requests can fill. Left to itself, generate_batch sizes it from the
    machine's memory: on a CPU, 60% of the RAM not yet used by this process, whatever other processes
    need (a tiny model's test was killed for memory on a shared 23 GiB machine)."""
    # Imported here: only this engine needs it, and hf.py (the plain path too) imports this module.
    from transformers import ContinuousBatchingConfig

    page = ContinuousBatchingConfig().page_size
    return ContinuousBatchingConfig(num_blocks=sum(ceil((len(p) + max_new_token) / page) for p in prompts))


def cb_answers(model, tok, questions: list[dict], settings, stop_ids: list[int]):
    """Turn by turn, all questions at once (grouped by temperature); yields when every turn is done."""
    conversations = {(qi, c): [] for qi in range(len(questions)) for c in range(settings.num_choices)}
    results = {key: {"index": key[1], "turns": [], "turn_tokens": []} for key in conversations}
    for turn in range(max(len(q["turns"]) for q in questions)):
        groups: dict[float, list[tuple[int, int]]] = {}
        for qi, c in conversations:
            if turn < len(questions[qi]["turns"]):
                groups.setdefault(temperature_for(questions[qi].get("category", "")), []).append((qi, c))
        for temperature, keys in sorted(groups.items()):
            for qi, c in keys:
                conversations[qi, c].append({"role": "user", "content": questions[qi]["turns"][turn]})
            prompts = [tok(render(tok, conversations[key]), add_special_tokens=False)["input_ids"] for key in keys]
            started = time.perf_counter()
            seed = batch_seed(settings.seed, 0, turn, sorted({questions[qi]["question_id"] for qi, _ in keys}))
            outs = cb_generate(model, tok, prompts, temperature, settings.max_new_token, stop_ids, seed)
            log.info("generate_batch: %d prompts (temperature %g), turn %d: %.1f s", len(prompts), temperature,
                     turn + 1, time.perf_counter() - started)
            for key, tokens in zip(keys, outs):
                text, cut = answer_text(tok, tokens, stop_ids)
                conversations[key].append({"role": "assistant", "content": text})
                results[key]["turns"].append(text)
                results[key]["turn_tokens"].append(cut)
    for qi, q in enumerate(questions):
        yield q, [results[qi, c] for c in range(settings.num_choices)]
