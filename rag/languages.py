"""The language a question is asked in, and what the answer says in it: the instruction to the model and the
refusal sentence (rag/data/languages.json). `Answer.refused` stays the machine-readable signal."""

from __future__ import annotations

import json
import re
import threading
from functools import lru_cache
from importlib import resources
from typing import Any

from .text import CJK_RUN, foreign_stopwords

DEFAULT = "en"
# py3langid's guess for a short question is weak below this confidence ("Où ?" 0.36 French); then English.
MIN_CONFIDENCE = 0.5
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def table() -> dict[str, dict[str, str]]:
    """{code: {"name": English name, "no_answer": refusal sentence}} for every language an answer may use."""
    raw: dict[str, Any] = json.loads(resources.files("rag").joinpath("data/languages.json").read_text("utf-8"))
    return {code: entry for code, entry in raw.items() if not code.startswith("_")}


@lru_cache(maxsize=1)
def _identifier() -> Any:
    """py3langid restricted to the languages of the table written in Latin or Cyrillic script: on questions of
    three to six words the full 97-language model often answers a language nobody asks in."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages([code for code in table() if code not in ("zh", "ja", "ko")])
    return identifier


def script_language(text: str) -> str | None:
    """"ja", "ko" or "zh" when the text is written mostly in that script (any kana makes it Japanese), else None."""
    cjk = sum(len(run) for run in CJK_RUN.findall(text))
    letters = sum(ch.isalpha() for ch in text) or 1
    if cjk < 2 or cjk / letters < 0.3:
        return None
    if _KANA.search(text):
        return "ja"
    if _HANGUL.search(text):
        return "ko"
    return "zh"


def question_language(question: str) -> str:
    """The code (a key of the table) of the language a question is written in; English when unsure."""
    by_script = script_language(question)
    if by_script:
        return by_script
    if sum(ch.isalpha() for ch in question) < 3:
        return DEFAULT
    with _LOCK:  # the identifier keeps no state per call, but is not documented as thread-safe
        code, confidence = _identifier().classify(question)
    return str(code) if confidence >= MIN_CONFIDENCE and code in table() else DEFAULT


def no_answer(language: str) -> str:
    """The refusal sentence in that language (English for a language the table lacks)."""
    entries = table()
    return entries.get(language, entries[DEFAULT])["no_answer"]


def answer_rule(language: str, *, find: bool = False) -> str:
    """The line the answer prompt adds for a question not in English ("" for English: that prompt is unchanged).
    find: the find step's reply (prompts/find.txt), whose answer is a few words and whose refusal is "none"."""
    if language == DEFAULT or language not in table():
        return ""
    name = table()[language]["name"]
    if find:
        return (f"\nThe question is in {name}: write the answer's words in {name}, keeping names and numbers as the "
                "passage gives them.")
    return (f"\nThe question is in {name}: write the answer in {name}, keeping names and numbers as the passages "
            f"give them. If no passage states any of the answer, reply exactly: {no_answer(language)}")


def is_refusal(text: str) -> bool:
    """Does the model's text say, in any language of the table, that the articles do not answer?"""
    flat = " ".join(text.split())
    return any(entry["no_answer"][:-1] in flat for entry in table().values())


def without_foreign_stopwords(text: str, language: str | None = None) -> str:
    """The text with the function words of French, German, Spanish, Portuguese and Italian blanked ("la", "des",
    "zum", "el"), unless it is in English (language, or else the text's own): there "die", "son" and the "Los" of
    "Los Angeles" are English words."""
    if (language or question_language(text)) == "en":
        return text
    foreign = foreign_stopwords()
    return re.sub(r"\w+", lambda m: " " if m.group().lower() in foreign else m.group(), text)
