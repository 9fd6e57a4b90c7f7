"""Search terms: how order-search text is cut into words, for indexing and for queries.

Both sides go through :func:`search_terms`, so SQLite (FTS5) and PostgreSQL (tsvector)
match exactly the same words whatever their own tokenizers or locale would do. User text
is never handed to a query language as typed: it becomes a list of plain words (letters
and digits only), each then written as a quoted prefix term of FTS5 or ``tsquery``.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final
from uuid import UUID

__all__ = [
    "MAX_TERM_LENGTH",
    "fts5_query",
    "order_ids_in",
    "search_terms",
    "terms_text",
    "tsquery",
    "without_order_ids",
]

MAX_TERM_LENGTH: Final = 128
"""Longer words are cut to this many characters (well under PostgreSQL's lexeme limit);
as prefix terms, cut words still match what they began with."""

_WORD = re.compile(r"[^\W_]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def search_terms(text: str) -> list[str]:
    """The distinct words of ``text``: case-folded, accents removed, letters and digits.

    ``"Ada.Lovelace@Example.com"`` -> ``["ada", "lovelace", "example", "com"]``.
    """
    # Fold case first: folding may itself produce combining marks ("İ" -> "i̇").
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return list(dict.fromkeys(w[:MAX_TERM_LENGTH] for w in _WORD.findall(plain)))


def terms_text(*texts: str) -> str:
    """The words of ``texts``, space-separated, as stored in the ``terms`` column."""
    return " ".join(dict.fromkeys(t for text in texts for t in search_terms(text)))


def order_ids_in(text: str) -> list[UUID]:
    """The UUIDs written in ``text`` (a search for an order id finds that order)."""
    return list(dict.fromkeys(UUID(match) for match in _UUID.findall(text)))


def without_order_ids(text: str) -> str:
    """``text`` without its UUIDs (they are matched exactly, not as words)."""
    return _UUID.sub(" ", text)


def fts5_query(terms: list[str]) -> str:
    """An FTS5 query: every term as a quoted prefix string, all of them required.

    Terms hold only letters and digits, so quoting them (``"abc"*``) leaves no way to
    express an FTS5 operator (``NEAR``, ``OR``, ``-``, ``^``, column filters); the
    doubling of ``"`` is there all the same, should the word rule ever change.
    """
    return " ".join('"' + term.replace('"', '""') + '"*' for term in terms)


def tsquery(terms: list[str]) -> str:
    """A PostgreSQL ``tsquery`` in its input syntax: ``'abc':* & 'def':*``.

    Cast from text (``CAST(? AS tsquery)``), not parsed by ``to_tsquery``: the words are
    taken as they are, like the lexemes stored by ``array_to_tsvector``.
    """
    return " & ".join("'" + term.replace("\\", "\\\\").replace("'", "''") + "':*" for term in terms)
