"""The lexical check a semantic neighbour must pass after the cosine search.

Cosine similarity alone cannot tell a paraphrase from a negation: with MiniLM, "What is the
capital of France?" scores 0.907 against "capital city of France?" and 0.898 against "What is not
the capital of France?" (reference/semantic-cache-measurements.md). So two questions are only
the same question when, besides being close, they agree on:

- negation: the same negation words (``isn't`` counts as ``not``);
- numbers: the same digits and number words;
- time: the same pointers to the past or the future (``was``, ``former``, ``will``, ``next``...):
  "What was the capital of France?" (0.948) and "What is the former capital of France?" (0.915)
  ask something else than "What is the capital of France?";
- names: every capitalised word of one (a place, a person, a product) appears in the other;
- content words: no word of one was replaced by another word (a substitution such as ``bigger``
  for ``smaller``), and at most ``max_extra_words`` content words were added on one side.

The check is deliberately strict: a false miss costs one upstream call, a false hit returns a
wrong answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"\w+(?:['’]\w+)*")


def _words(*lines: str) -> frozenset[str]:
    return frozenset(word for line in lines for word in line.split())


NEGATIONS = frozenset(
    {"not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor", "without", "cannot"}
)
NUMBER_WORDS = _words(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred "
    "thousand million billion trillion first second third fourth fifth sixth seventh eighth ninth "
    "tenth last half double twice once dozen",
)
# Words that move a question into the past or the future (the present is the default, so
# "current", "now" and "today" carry no mark).
TIME_WORDS = {
    **dict.fromkeys(
        _words(
            "was were wasn't weren't did didn't had hadn't former formerly previous previously past ago "
            "originally historically yesterday",
        ),
        "past",
    ),
    **dict.fromkeys(_words("will won't future upcoming tomorrow next"), "future"),
}
# Words that carry no meaning of their own in a question (articles, pronouns, auxiliaries,
# prepositions, question words and the verbs of asking).
FUNCTION_WORDS = _words(
    "a an the this that these those it its it's i me my mine we us our you your yours he him his she "
    "her they them their what which who whom whose when where why how is are was were be been being am "
    "do does did done doing have has had having will would shall should can could may might must of "
    "in on at to for from by with about as into onto over under than then so and or but if because "
    "while please tell give show explain describe say know want like help let lets let's i'm "
    "there here some any just also very really kindly what's who's where's how's that's there's",
)


@dataclass(frozen=True, slots=True)
class _Profile:
    words: frozenset[str]
    negations: frozenset[str]
    numbers: frozenset[str]
    times: frozenset[str]
    names: frozenset[str]
    content: frozenset[str]


def _profile(text: str) -> _Profile:
    tokens = _WORD.findall(text)
    words: set[str] = set()
    negations: set[str] = set()
    numbers: set[str] = set()
    times: set[str] = set()
    names: set[str] = set()
    content: set[str] = set()
    for token in tokens:
        lower = token.lower().replace("’", "'")
        if lower.endswith("'s") and lower not in FUNCTION_WORDS:
            lower = lower[:-2]  # France's -> france
        words.add(lower)
        time = TIME_WORDS.get(lower)
        if time is not None:
            times.add(time)
        if lower in NEGATIONS or lower.endswith("n't"):
            negations.add("not" if lower.endswith("n't") or lower == "cannot" else lower)
            continue
        if lower in NUMBER_WORDS or any(c.isdigit() for c in lower):
            numbers.add(lower)
            continue
        if lower in FUNCTION_WORDS:
            continue
        if token[0].isupper():
            names.add(lower)
        content.add(_stem(lower))
    return _Profile(
        frozenset(words),
        frozenset(negations),
        frozenset(numbers),
        frozenset(times),
        frozenset(names),
        frozenset(content),
    )


def _stem(word: str) -> str:
    # Plurals only: enough for "capitals"/"capital" without merging unrelated words.
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def texts_agree(a: str, b: str, *, max_extra_words: int = 1) -> bool:
    """Whether ``a`` and ``b`` ask the same thing, as far as their words show (see the module)."""
    pa, pb = _profile(a), _profile(b)
    if pa.negations != pb.negations or pa.numbers != pb.numbers or pa.times != pb.times:
        return False
    if not pa.names <= pb.words or not pb.names <= pa.words:
        return False
    only_a, only_b = pa.content - pb.content, pb.content - pa.content
    if only_a and only_b:
        return False
    return len(only_a) + len(only_b) <= max_extra_words
