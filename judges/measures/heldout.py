"""`align heldout`: held-out measures after post-training, kept per row so models can be paired.

Usage:
    align heldout --kind sft --model-path CKPT --data FILE_OR_HUB_ID [--split test_sft] --rows N --out DIR
    align heldout --kind dpo --model-path CKPT --ref-model-path REF --data FILE_OR_HUB_ID [--split test_prefs]
                  --rows N [--beta 0.01] --out DIR

sft: mean held-out loss, the per-token NLL of assistant tokens as TRL's SFTTrainer computes it
     (`loss`: over all tokens of all rows; `loss_per_row`: the mean of each row's mean, which is TRL's
     eval_loss at per_device_eval_batch_size 1). Per row: its NLL sum and token count.
dpo: preference accuracy (share of pairs where the implicit reward beta * (log pi(y|x) - log pi_ref(y|x))
     of `chosen` is higher, as TRL's rewards/accuracies: a tie counts as wrong, so a policy equal to its
     reference scores 0), the tie share (pairs with equal rewards), the accuracy with a tie counting half
     (`preference_accuracy_ties_half`: 0.5 for a policy equal to its reference) and the mean reward margin.
     Per row: log-probs under both models, both rewards, the margin, whether the pair was ranked right and
     whether it tied.
Writes DIR/heldout.json ({measures: {name: {value, n}}, rows: {row id: values}, skipped: {row id: why}})
and DIR/heldout.run_card.json. DIR must be new, empty or an earlier `align heldout` output (replaced only
with --overwrite); one writer per DIR. The same data and --rows give every model the same row ids.
"""

from __future__ import annotations

import argparse
import logging
import time

from align.plumbing.argtypes import positive_float, positive_int
from align.plumbing.errors import UserError
from align.plumbing.file_set import replaced_together
from align.plumbing.files import atomic_write_json, check_output_dir
from align.plumbing.locks import output_lock
from align.plumbing.redact import redact
from align.plumbing.runcard import write_run_card
from judges.measures.logprobs import chat_template_for, dpo_sequences, sequence_logprobs, sft_sequence
from judges.measures.model_checks import check_model_path, device, load_tokenizer
from judges.measures.outputs import HELDOUT, check_measure_output
from judges.measures.rows import load_heldout

log = logging.getLogger(__name__)
DEFAULT_SPLITS = {"sft": "test_sft", "dpo": "test_prefs"}  # UltraChat-200k's and UltraFeedback's test splits
DTYPES = ("float32", "bfloat16", "float16")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=("sft", "dpo"), required=True, help="held-out loss or preference accuracy")
    parser.add_argument("--model-path", required=True, help="the post-trained checkpoint")
    parser.add_argument("--ref-model-path", help="dpo: the reference model (the SFT checkpoint DPO started from)")
    parser.add_argument("--data", required=True, help="a .jsonl/.json/.parquet file or a hub dataset id")
    parser.add_argument("--split", help="hub split (default: test_sft for sft, test_prefs for dpo)")
    parser.add_argument("--rows", type=positive_int, default=1000, help="the first N rows (default 1000)")
    parser.add_argument("--beta", type=positive_float, default=0.01,
                        help="dpo: the reward's beta (default 0.01, the study's DPO recipe)")
    parser.add_argument("--max-length", type=positive_int, default=2048,
                        help="tokens per sequence, cut as training cuts them (default 2048, the study's recipes)")
    parser.add_argument("--batch-size", type=positive_int, default=4, help="sequences per forward pass (default 4)")
    parser.add_argument("--device", type=device, default=None,
                        help="cpu, cuda, cuda:0, mps, ... (default: cuda when available)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="weights dtype (default float32)")
    parser.add_argument("--out", required=True, help="output directory (heldout.json, heldout.run_card.json)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the earlier align heldout result in --out (refused without it)")


def _load_model(path: str, args: argparse.Namespace):
    import torch
    from transformers import AutoModelForCausalLM

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, args.dtype))
    return model.to(device).eval()


def _sft(args, tokenizer, rows, skipped) -> tuple[dict, dict]:
    template = chat_template_for(tokenizer, "sft", args.model_path)
    sequences = {}
    for row_id, row in rows.items():
        seq = sft_sequence(tokenizer, template, row["messages"], args.max_length)
        if seq is None:
            skipped[row_id] = f"no assistant token within --max-length {args.max_length}"
        else:
            sequences[row_id] = seq
    if not sequences:
        raise UserError(f"--data {args.data}: no row has assistant tokens within --max-length {args.max_length}")
    model = _load_model(args.model_path, args)
    sums = sequence_logprobs(model, list(sequences.values()), args.batch_size, tokenizer.pad_token_id, "sft loss")
    per_row = {row_id: {"nll": -s, "tokens": n} for row_id, (s, n) in zip(sequences, sums)}
    tokens = sum(v["tokens"] for v in per_row.values())
    measures = {
        "loss": {"value": sum(v["nll"] for v in per_row.values()) / tokens, "n": len(per_row), "tokens": tokens},
        "loss_per_row": {"value": sum(v["nll"] / v["tokens"] for v in per_row.values()) / len(per_row),
                         "n": len(per_row)},
    }
    return measures, per_row


def _dpo(args, tokenizer, rows, skipped) -> tuple[dict, dict]:
    template = chat_template_for(tokenizer, "dpo", args.model_path)
    pairs = {}
    for row_id, row in rows.items():
        pair = dpo_sequences(tokenizer, template, row["chosen"], row["rejected"], args.max_length)
        if pair is None:
            skipped[row_id] = f"the prompt alone fills --max-length {args.max_length}"
        else:
            pairs[row_id] = pair
    if not pairs:
        raise UserError(f"--data {args.data}: every prompt fills --max-length {args.max_length}")
    flat = [seq for pair in pairs.values() for seq in pair]  # chosen, rejected, chosen, rejected, ...
    policy = sequence_logprobs(_load_model(args.model_path, args), flat, args.batch_size, tokenizer.pad_token_id,
                               "policy log-probs")
    reference = sequence_logprobs(_load_model(args.ref_model_path, args), flat, args.batch_size,
                                  tokenizer.pad_token_id, "reference log-probs")
    per_row = {}
    for i, row_id in enumerate(pairs):
        (chosen, _), (rejected, _) = policy[2 * i], policy[2 * i + 1]
        (ref_chosen, _), (ref_rejected, _) = reference[2 * i], reference[2 * i + 1]
        reward_chosen, reward_rejected = args.beta * (chosen - ref_chosen), args.beta * (rejected - ref_rejected)
        per_row[row_id] = {"chosen_logp": chosen, "rejected_logp": rejected, "ref_chosen_logp": ref_chosen,
                           "ref_rejected_logp": ref_rejected, "reward_chosen": reward_chosen,
                           "reward_rejected": reward_rejected, "margin": reward_chosen - reward_rejected,
                           "correct": float(reward_chosen > reward_rejected),
                           "tie": float(reward_chosen == reward_rejected)}
    n = len(per_row)

    def mean(key: str) -> dict:
        return {"value": sum(v[key] for v in per_row.values()) / n, "n": n}

    measures = {"preference_accuracy": mean("correct"), "preference_tie_share": mean("tie"),
                "preference_accuracy_ties_half": {"value": mean("correct")["value"] + mean("tie")["value"] / 2, "n": n},
                "reward_margin": mean("margin"),
                "reward_chosen": mean("reward_chosen"), "reward_rejected": mean("reward_rejected")}
    return measures, per_row


def run(args: argparse.Namespace) -> int:
    started = time.time()
    check_model_path(args.model_path)
    if args.kind == "dpo":
        if not args.ref_model_path:
            raise UserError("--kind dpo needs --ref-model-path (the model DPO started from)")
        check_model_path(args.ref_model_path, "--ref-model-path")
    elif args.ref_model_path:
        raise UserError("--ref-model-path is for --kind dpo only")
    inputs = {"--model-path": args.model_path, "--ref-model-path": args.ref_model_path, "--data": args.data}
    check_output_dir(args.out, "--out")
    with output_lock(args.out, "--out"):  # one writer per folder, for the whole measurement
        out = check_measure_output(args.out, HELDOUT, inputs, args.overwrite)
        measures, skipped = _measure_into(args, out, started)
    for name, measure in measures.items():
        print(f"{name}: {measure['value']:.6g} (n={measure['n']})")
    if skipped:
        print(f"{len(skipped)} row(s) left out (named in heldout.json)")
    print(f"wrote {out / 'heldout.json'}")
    return 0


def _measure_into(args: argparse.Namespace, out, started: float) -> tuple[dict, dict]:
    split = args.split or DEFAULT_SPLITS[args.kind]
    data = load_heldout(args.data, split, args.rows, args.kind)
    tokenizer = load_tokenizer(args.model_path)
    if tokenizer.pad_token_id is None:  # padding is masked out; any id will do
        tokenizer.pad_token = tokenizer.eos_token
    skipped = dict(data.skipped)
    measures, per_row = (_sft if args.kind == "sft" else _dpo)(args, tokenizer, data.rows, skipped)
    settings = {"kind": args.kind, "model_path": args.model_path, "ref_model_path": args.ref_model_path,
                "data": args.data, "split": split, "rows_requested": args.rows, "rows_read": data.read,
                "id_field": data.id_field, "max_length": args.max_length, "dtype": args.dtype}
    if args.kind == "dpo":
        settings["beta"] = args.beta
    # swapped in together: a failed write leaves the previous result (or nothing); a folder it made goes again
    with replaced_together(out, HELDOUT.names, "--out") as staging:
        # The settings name the data and models as given, which may be URLs with credentials.
        atomic_write_json(staging / "heldout.json", redact({**settings, "measures": measures, "rows": per_row,
                                                            "skipped": skipped}))
        write_run_card(staging, {"stage": "heldout", "output_file": str(out / "heldout.json"), **settings,
                                 "batch_size": args.batch_size, "device": args.device}, started=started,
                       name="heldout.run_card.json")
    return measures, skipped
