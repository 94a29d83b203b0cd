"""How long a silence ends the candidate's turn, from what is known when they stop speaking.

A fixed 700 ms rule makes every finished answer wait 700 ms, and still cuts off a
candidate who stops to think after "and" or "um". This policy chooses the silence needed
from the words heard so far (the recogniser's latest hypothesis for the utterance):

- a trailing conjunction, filler or function word ("and", "because", "um", "the", "to",
  "is"), a trailing comma or dash: the thought is unfinished -> `unfinished_ms` (long:
  candidates pause 0.6-1.5 s to think, and a cut-off is worse than some dead air);
- sentence-final punctuation (recognisers that punctuate, like Moonshine) on a complete
  clause: finished -> `finished_ms` (short);
- no punctuation to go by (PocketSphinx) and no unfinished ending -> `plain_ms`;
- a very short answer to an open question ("Well." to "Tell me about...") is more
  likely a start than an answer -> at least `plain_ms`.

Recognisers call `silence_needed_ms()` while the silence grows (the pause so far is
theirs to count) and end the turn once it is reached. The question asked, when the
runtime tells the stream (`set_question`), is one signal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Words after which a speaker is almost never done (English), whatever the punctuation.
HARD_CONTINUERS = frozenset("""
and but or nor because cause since although though whereas unless until plus
um umm uh uhh er erm ah eh hmm mm
the a an to of in on at by for with from into onto about over under between through during
my our your their his her its these those some every i we you they he she i'm we're i've
we've i'd i'll there's if than whether whose
""".split())
# Words that end a clause only sometimes ("I'm proud of that.", "as well."): unfinished
# unless the recogniser put a full stop after them.
SOFT_CONTINUERS = frozenset("""
so also then as like well basically actually which that who whom what how why when where while
this it is are was were be been am do does did have has had will would can could should
may might must not very really just more most less quite any each no
""".split())
UNFINISHED_WORDS = HARD_CONTINUERS | SOFT_CONTINUERS

# Questions that ask for an account, not a yes or no.
_OPEN_QUESTION = re.compile(r"\b(tell me|describe|walk me|explain|how|why|what|talk about|give me an example)\b", re.I)
_WORD = re.compile(r"[a-z']+")


@dataclass(frozen=True)
class TurnPolicy:
    finished_ms: int = 320
    plain_ms: int = 560
    unfinished_ms: int = 2000
    short_answer_words: int = 3  # at most this many words to an open question: wait plain_ms

    def silence_needed_ms(self, words: str, *, question: str = "") -> int:
        text = words.strip()
        tokens = _WORD.findall(text.lower())
        if not tokens:
            return self.unfinished_ms  # nothing recognised yet: no reason to hurry
        if text.endswith((",", "-", "\u2014", "...", ";", ":")) or tokens[-1] in HARD_CONTINUERS:
            return self.unfinished_ms
        punctuated = text.endswith((".", "?", "!"))
        if tokens[-1] in SOFT_CONTINUERS and not punctuated:
            return self.unfinished_ms
        needed = self.finished_ms if punctuated else self.plain_ms
        if len(tokens) <= self.short_answer_words and question and _OPEN_QUESTION.search(question):
            needed = max(needed, self.plain_ms)
        return needed


@dataclass(frozen=True)
class FixedTurnPolicy:
    """The old rule: the same silence whatever was said (REALTIME_TURN_TAKING=fixed)."""

    silence_ms: int = 700

    def silence_needed_ms(self, words: str, *, question: str = "") -> int:
        return self.silence_ms


def from_config(config, *, punctuates: bool = True) -> TurnPolicy | FixedTurnPolicy:
    """The policy that settings.REALTIME names (TURN_TAKING: adaptive | fixed).

    A recogniser that does not punctuate (PocketSphinx) cannot tell a finished sentence
    from a pause after a content word, so it never ends a turn sooner than the fixed rule
    would; it only waits longer after an unfinished ending.
    """
    mode = config.get("TURN_TAKING", "adaptive")
    fixed_ms = config["END_OF_UTTERANCE_SILENCE_MS"]
    if mode == "fixed":
        return FixedTurnPolicy(fixed_ms)
    if mode != "adaptive":
        raise ValueError(f"Unknown REALTIME_TURN_TAKING={mode!r}; choose adaptive or fixed.")
    if not punctuates:
        return TurnPolicy(plain_ms=fixed_ms, unfinished_ms=max(fixed_ms, TurnPolicy.unfinished_ms))
    return TurnPolicy()
