"""A1111's prompt syntax: ``(word:1.3)``, ``(word)`` (x1.1), ``[word]`` (/1.1), ``\\(`` escapes and ``BREAK``.

``parse`` turns a prompt into BREAK-separated segments of (text, weight) fragments, as AUTOMATIC1111's
``parse_prompt_attention`` does (the same regular expression, the same unbalanced-bracket rules), so a prompt
written for A1111 means the same here. Encoding the fragments is compel's job (``encode.py``).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

ROUND, SQUARE = 1.1, 1 / 1.1  # A1111's multipliers for ( ) and [ ]

_ATTENTION = re.compile(
    r"""
    \\\( | \\\) | \\\[ | \\] | \\\\ | \\ |   # escapes
    \( | \[ |                                # openers
    :\s*([+-]?[.\d]+)\s*\) |                 # :weight) closes a ( with that weight
    \) | ] |                                 # closers
    [^\\()\[\]:]+ |                          # plain text
    :
    """,
    re.X,
)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


@dataclass(frozen=True)
class Fragment:
    text: str
    weight: float


Segment = tuple[Fragment, ...]  # what goes into its own 75-token chunks; BREAK starts the next one


def parse(prompt: str) -> tuple[Segment, ...]:
    """The prompt's segments (one unless it has ``BREAK``), each a list of fragments with their weights; runs of
    equal weight are merged, empty text dropped. A prompt with no syntax is one fragment of weight 1."""
    parts: list[list[str | float]] = []  # [text, weight]; weight None marks a BREAK
    breaks: list[int] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def multiply(start: int, factor: float) -> None:
        for item in parts[start:]:
            item[1] = float(item[1]) * factor

    for match in _ATTENTION.finditer(prompt):
        text, weight = match.group(0), match.group(1)
        if text.startswith("\\"):
            parts.append([text[1:], 1.0])
        elif text == "(":
            round_open.append(len(parts))
        elif text == "[":
            square_open.append(len(parts))
        elif weight is not None and round_open:
            multiply(round_open.pop(), _number(weight))
        elif text == ")" and round_open:
            multiply(round_open.pop(), ROUND)
        elif text == "]" and square_open:
            multiply(square_open.pop(), SQUARE)
        else:
            for i, piece in enumerate(_BREAK.split(text)):
                if i:
                    breaks.append(len(parts))
                parts.append([piece, 1.0])
    for start in round_open:  # unclosed brackets weigh everything after them, as in A1111
        multiply(start, ROUND)
    for start in square_open:
        multiply(start, SQUARE)

    segments: list[Segment] = []
    bounds = [0, *breaks, len(parts)]
    for start, end in itertools.pairwise(bounds):
        segments.append(_merge([Fragment(str(t), float(w)) for t, w in parts[start:end]]))
    return tuple(segments)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # "1.2.3": A1111 would crash; treat it as no weight
        return 1.0


def _merge(fragments: list[Fragment]) -> Segment:
    merged: list[Fragment] = []
    for fragment in fragments:
        if not fragment.text:
            continue
        if merged and merged[-1].weight == fragment.weight:
            merged[-1] = Fragment(merged[-1].text + fragment.text, fragment.weight)
        else:
            merged.append(fragment)
    return tuple(merged)


def is_plain(prompt: str) -> bool:
    """No weights, escapes or BREAK: the text the encoder gets is the prompt itself."""
    segments = parse(prompt)
    if len(segments) != 1:
        return False
    fragments = segments[0]
    return not fragments or (len(fragments) == 1 and fragments[0].weight == 1.0 and fragments[0].text == prompt)
