"""Split streamed LLM text into pieces worth synthesizing: whole sentences, early.

Speaking starts as soon as the first sentence is complete, so the first piece is cut
short when a long sentence has a natural pause in it.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*\s")
_SOFT_BREAK = re.compile(r"[,;:]\s")


class SentenceChunker:
    def __init__(self, *, max_chars: int = 220, first_max_chars: int = 80):
        self._buffer = ""
        self._max_chars = max_chars
        self._first_max_chars = first_max_chars
        self._emitted = 0

    def push(self, text: str) -> list[str]:
        self._buffer += text
        pieces = []
        while True:
            piece = self._cut()
            if piece is None:
                return pieces
            pieces.append(piece)

    def flush(self) -> list[str]:
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest else []

    def _cut(self) -> str | None:
        match = _SENTENCE_END.search(self._buffer)
        if match:
            return self._take(match.end())
        limit = self._first_max_chars if self._emitted == 0 else self._max_chars
        if len(self._buffer) <= limit:
            return None
        soft = [m.end() for m in _SOFT_BREAK.finditer(self._buffer, 0, limit)]
        if soft:
            return self._take(soft[-1])
        space = self._buffer.rfind(" ", 0, self._max_chars)
        if len(self._buffer) > self._max_chars and space > 0:
            return self._take(space + 1)
        return None

    def _take(self, end: int) -> str | None:
        piece, self._buffer = self._buffer[:end].strip(), self._buffer[end:]
        if not piece:
            return None
        self._emitted += 1
        return piece
