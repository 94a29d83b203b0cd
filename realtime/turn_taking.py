"""How long a silence ends the candidate's turn, from what is known when they stop speaking.

A fixed 700 ms rule makes every finished answer wait 700 ms, and still cuts off a
candidate who stops to think after "and" or "um". This policy chooses the silence needed
from the words heard so far (the recogniser's latest hypothesis for the utterance) and
the question the candidate is answering. Interview answers have thinking pauses of
0.6-1.5 s; a cut-off is worse than some dead air, so anything that looks unfinished waits
`unfinished_ms` (2 s), only an answer that looks finished is taken after `finished_ms`
(240 ms), and an ambiguous ending waits `plain_ms`, the old fixed rule's 700 ms: the
policy ends a turn sooner than the fixed rule only when it is confident. (A recogniser's
mishearing makes the words look finished now and then: "deadline and" came back as
"deadline then." in one benchmark run and "back-end and" as "back end then." in another,
so a trailing "then" counts as a continuer, like the "and" it often is.)

The rules, in order (first match wins):

1. Nothing recognised yet -> `unfinished_ms` (no reason to hurry).
2. The words end on a continuer -> `unfinished_ms`: a conjunction ("and", "because",
   "but"), a filler ("um", "uh"), a preposition, article, possessive or subject pronoun
   ("to", "the", "with", "my", "I"): English sentences almost never end there, whatever
   the recogniser's punctuation says.
3. The words end on a thinking phrase ("let me think", "good question", "how do I put
   it") or consist only of fillers and discourse markers ("Um, so?", "Well,") ->
   `unfinished_ms`: the candidate has not started answering yet.
4. The words end on an auxiliary or copula ("was", "were", "is", "would", "have") ->
   `unfinished_ms` ("The reason we switched was ..."), unless they are a short
   elliptical reply (at most `short_answer_words` words) to a yes/no question ("Did you
   lead it?" - "Yes, I did.") -> `plain_ms`.
5. Other words that end a sentence only sometimes ("so", "that", "which", "really";
   "I'm proud of that."): `unfinished_ms` when unpunctuated, `plain_ms` when the
   recogniser put a full stop after them.
6. A trailing comma, colon or dash -> `plain_ms`: Moonshine writes a comma where the
   audio it was given stops short (a pause under ~0.3 s), so a comma alone is weak
   evidence; the words before it decide (rules 2-5 already caught "was," or "and,").
7. An open question ("Tell me about ...", "Describe ...", "How did you ...", "Why ...")
   answered so far in fewer than `open_answer_words` words (fillers not counted) ->
   `unfinished_ms`: the first
   short sentence of an account is a start more often than the whole answer (the
   recogniser may also have misheard a trailing "and": "back-end and" -> "backhand end").
8. Otherwise: sentence-final punctuation (recognisers that punctuate, like Moonshine)
   -> `finished_ms`; no punctuation to go by (PocketSphinx) -> `plain_ms`.

Recognisers call `silence_needed_ms()` while the silence grows (the pause so far is
theirs to count) and end the turn once it is reached; a new decode of the words (a
pause that was only a breath) is asked again. The runtime tells the stream the question
asked (`set_question`) each time the interviewer finishes speaking.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Rule 2: words after which a speaker is almost never done (English), whatever the punctuation.
HARD_CONTINUERS = frozenset("""
and but or nor because cause since although though whereas unless until plus
um umm uh uhh er erm ah eh hmm mm
the a an to of in on at by for with from into onto about over under between through during
my our your their his her its these those every i we you they he she i'm we're i've
we've i'd i'll you're they're there's if than whether whose
then
""".split())
# Rule 3: an utterance made only of these has not started answering.
FILLERS = frozenset("""
um umm uh uhh er erm ah eh hmm mm oh so well like okay ok right now alright yeah
""".split())
# A thinking phrase as the whole of the last clause (after fillers): "Um, let me think." but
# not "... under one second." or "... that is what I mean."
_THINKING = re.compile(
    r"(?:^|[.,;:!?]\s*)(?:(?:um+|uh+|er|erm|hmm+|so|well|okay|ok|and|but|oh)\W+)*"
    r"(let me (think|see)|let's see|(that'?s |that is |it'?s )?(a |a very )?good question"
    r"|how (do|should|can) i (put|say|describe) (it|this|that)|what(?:'s| is) the word"
    r"|give me a (second|moment|sec)|hold on|one (second|moment)|i mean|you know)\W*$", re.I)
# Rule 4: an auxiliary or copula ends a clause only in elliptical replies ("Yes, it was.").
AUXILIARIES = frozenset("""
is are was were am be been being have has had do does did will would
""".split())
# Rule 5: words that end a sentence only sometimes.
SOFT_CONTINUERS = frozenset("""
so also as like well basically actually which that who whom what how why when where while
this it not very really just more most less quite any each some no
""".split())
UNFINISHED_WORDS = HARD_CONTINUERS | AUXILIARIES | SOFT_CONTINUERS

# Questions that ask for an account, not a yes, a no or a name.
_OPEN_QUESTION = re.compile(
    r"\b(tell me|tell us|describe|walk me|walk us|explain|talk (me )?about|give me an example|share|"
    r"how (did|do|would|will|have|could|can)|why)\b", re.I)
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_LAST_CLAUSE = re.compile(r"[.?!;:,]\s+")


_YES_NO_QUESTION = re.compile(r"^(do|does|did|have|has|had|is|are|was|were|can|could|will|would|should|may)\b", re.I)


def _last_sentence(text: str) -> str:
    parts = [p.strip() for p in re.split(r"(?<=[.?!])\s+", text.strip()) if p.strip()]
    return parts[-1] if parts else ""


def is_open_question(question: str) -> bool:
    return bool(question and _OPEN_QUESTION.search(_last_sentence(question)))


def is_yes_no_question(question: str) -> bool:
    return bool(question and _YES_NO_QUESTION.search(_last_sentence(question)))


@dataclass(frozen=True)
class TurnPolicy:
    finished_ms: int = 240
    plain_ms: int = 700  # the fixed rule's silence: an ambiguous ending never ends sooner than it did
    unfinished_ms: int = 2000
    short_answer_words: int = 3  # rule 4: "Yes, it was." may end on "was"
    open_answer_words: int = 8  # rule 7: fewer words than this to an open question is a start

    def silence_needed_ms(self, words: str, *, question: str = "") -> int:
        text = words.strip()
        tokens = _WORD.findall(text.lower())
        if not tokens:
            return self.unfinished_ms
        last = tokens[-1]
        if last in HARD_CONTINUERS:
            return self.unfinished_ms
        if _THINKING.search(text) or all(t in FILLERS for t in tokens):
            return self.unfinished_ms
        if last in AUXILIARIES:
            elliptical = len(tokens) <= self.short_answer_words and is_yes_no_question(question)
            return self.plain_ms if elliptical else self.unfinished_ms
        stripped = text.rstrip()
        punctuated = stripped.endswith((".", "?", "!"))
        if last in SOFT_CONTINUERS:
            return self.plain_ms if punctuated and len(tokens) > 1 else self.unfinished_ms
        if stripped.endswith((",", "-", "\u2014", ";", ":")) or stripped.endswith("..."):
            needed = self.plain_ms
        else:
            needed = self.finished_ms if punctuated else self.plain_ms
        if sum(t not in FILLERS for t in tokens) < self.open_answer_words and is_open_question(question):
            return self.unfinished_ms
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
    return TurnPolicy(plain_ms=fixed_ms)
