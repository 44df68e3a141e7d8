"""Prompts bounded in tokens: the prompt, its chat template and the answer must fit the model's context window.

Characters are no measure: 2,000 characters of "1234567890 " are ~2,000 Qwen tokens (one per digit) and 1,999
rare CJK characters 3,600-6,500, against a window of 2,048.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from .context import Passage

Count = Callable[[str], int]

# Chat-template tokens around the messages' own text, which count_tokens does not see. Measured with the default
# Qwen2.5 template: 13 for a system + user pair, 29 for a lone user message (the template then adds a system line
# of its own); SmolLM2's template is of the same size.
TEMPLATE_MARGIN = 48
QUESTION_SHARE = 0.5  # of the room left after the instructions and the answer; the rest is for the passages


def context_window(generator: Any, default: int) -> int:
    """The generator's context size in tokens when it says (llama.cpp does), else the setting."""
    n_ctx = getattr(generator, "n_ctx", None)
    return n_ctx if isinstance(n_ctx, int) and not isinstance(n_ctx, bool) and n_ctx > 0 else default


def message_tokens(messages: Sequence[dict[str, str]], count: Count) -> int:
    """Tokens of the messages' text (without the chat template, which TEMPLATE_MARGIN covers)."""
    return sum(count(m["content"]) for m in messages)


def cut_to_tokens(text: str, limit: int, count: Count, *, keep_end: bool = False) -> str:
    """The longest start of text (its end, with keep_end) of at most limit tokens, cut at a space when one is
    near; found by bisection, so a 2,000-character text costs ~11 tokenizer calls."""
    if count(text) <= limit:
        return text
    if limit <= 0:
        return ""

    def piece(n: int) -> str:
        return text[len(text) - n:] if keep_end else text[:n]

    fits, too_long = 0, len(text)
    while too_long - fits > 1:
        mid = (fits + too_long) // 2
        if count(piece(mid)) <= limit:
            fits = mid
        else:
            too_long = mid
    cut = piece(fits)
    # end on a whole word when a space is within the last 20 characters (CJK text has none: cut anywhere)
    if keep_end:
        space = cut.find(" ", 0, 20)
        return cut[space + 1:] if 0 <= space < len(cut) - 1 else cut.strip()
    space = cut.rfind(" ", max(0, len(cut) - 20))
    return cut[:space] if space > 0 else cut.strip()


def fit_passages(passages: Sequence[Passage], render: Callable[[Sequence[Passage]], Sequence[dict[str, str]]],
                 count: Count, room: int) -> tuple[list[Passage], Sequence[dict[str, str]]]:
    """The passages whose prompt fits in room tokens: the least relevant sentence goes first, the rest are
    numbered 1..n again (the answer grammar allows exactly those numbers). May return no passages."""
    kept = list(passages)
    while True:
        messages = render(kept)
        if not kept or message_tokens(messages, count) <= room:
            return kept, messages
        weakest = min(range(len(kept)), key=lambda i: kept[i].score)
        kept = [dataclasses.replace(p, number=n) for n, p in enumerate(kept[:weakest] + kept[weakest + 1:], 1)]


def fit_turns(turns: Sequence[str], room: int, count: Count) -> str:
    """Earlier turns of a conversation within room tokens: the oldest go first, then the last one is cut,
    keeping its end (the answer the follow-up refers to)."""
    kept = list(turns)
    while kept and count("\n".join(kept)) > room:
        if len(kept) == 1:
            return cut_to_tokens(kept[0], room, count, keep_end=True)
        kept.pop(0)
    return "\n".join(kept)
