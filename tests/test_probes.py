"""The relation probe set (issue 14) is well-formed: every false row is a real relation trap, not a lexical one."""

from __future__ import annotations

import json
from collections import Counter

from .conftest import DATA

KINDS = {"true", "swapped_roles", "winner_loser", "reached_landed", "wrong_entity", "place_country",
         "wrong_number_role"}
FIELDS = {"id", "question", "passage", "claim", "phrase", "label", "kind"}


def load() -> list[dict]:
    return [json.loads(line) for line in (DATA / "relation_probes.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]


def test_probe_rows_have_every_field_a_known_kind_and_a_unique_id() -> None:
    rows = load()
    assert len(rows) >= 80
    for row in rows:
        assert FIELDS <= set(row), row.get("id")
        assert row["kind"] in KINDS, row["id"]
        assert isinstance(row["label"], bool), row["id"]
        assert (row["kind"] == "true") == row["label"], row["id"]  # a true row has kind "true", and only it
        assert row["claim"].endswith(" [1]."), row["id"]
        assert row["phrase"].lower() in row["claim"].lower(), row["id"]  # the phrase is the claim's answer
    ids = Counter(row["id"] for row in rows)
    assert [i for i, n in ids.items() if n > 1] == []


def test_half_the_probes_are_true_and_the_false_ones_cover_every_kind_of_trap() -> None:
    rows = load()
    assert sum(row["label"] for row in rows) * 2 == len(rows)
    assert {row["kind"] for row in rows if not row["label"]} == KINDS - {"true"}
    # a verifier that demands a verbatim copy of the passage must pay for it
    assert sum(bool(row.get("paraphrase")) for row in rows if row["label"]) >= 6


def test_every_false_claim_uses_a_phrase_of_its_passage() -> None:
    """So a check of shared words passes it: only the relation is wrong."""
    traps = [row for row in load() if not row["label"]]
    assert [row["id"] for row in traps if row["phrase"].lower() not in row["passage"].lower()] == []
