"""The like request's edge statements, read from the source: no lightweight transaction on `likes`
(docs/likes.md: the edge is one blind write, ordered by the timestamps Redis hands out)."""

from __future__ import annotations

import re

from tests.unit.test_storage_room import STORAGE, string_literals

CONDITION = re.compile(r"\bIF\s+(NOT\s+)?EXISTS\b|\bIF\s+\w+\s*(=|!=|<|>|IN\b)", re.IGNORECASE)


def test_the_scan_finds_a_condition():
    assert CONDITION.search("INSERT INTO likes (a) VALUES (?) IF NOT EXISTS")
    assert CONDITION.search("DELETE FROM likes WHERE a = ? IF bucket = ?")
    assert not CONDITION.search("UPDATE likes USING TIMESTAMP ? SET liked_at = null WHERE user_id = ?")


def test_no_statement_on_the_like_edges_is_conditional():
    statements = [text for _, text in string_literals(STORAGE / "likes.py") if "likes " in text]
    assert any(text.startswith("UPDATE likes USING TIMESTAMP") for text in statements)
    assert not [text for text in statements if CONDITION.search(text)]
