"""A1111 prompt syntax: weights, escapes, BREAK; and the LoRA tags a prompt may carry (SPEC.md 9.12)."""

from __future__ import annotations

import pytest
from latentbrush.backend.lora.request import split_tags
from latentbrush.backend.prompts.syntax import Fragment, is_plain, parse
from latentbrush.protocol import ErrorCode, ProtocolError


def weights(prompt: str) -> list[list[tuple[str, float]]]:
    return [[(f.text, round(f.weight, 4)) for f in segment] for segment in parse(prompt)]


@pytest.mark.parametrize(("prompt", "expected"), [
    ("a cat", [[("a cat", 1.0)]]),
    ("a (cat:1.3) photo", [[("a ", 1.0), ("cat", 1.3), (" photo", 1.0)]]),
    ("(cat)", [[("cat", 1.1)]]),
    ("((cat))", [[("cat", 1.21)]]),
    ("[cat]", [[("cat", round(1 / 1.1, 4))]]),
    ("(a [cat]:1.5)", [[("a ", 1.5), ("cat", round(1.5 / 1.1, 4))]]),
    (r"\(cat\) and \[dog\]", [[("(cat) and [dog]", 1.0)]]),
    ("(unclosed cat", [[("unclosed cat", 1.1)]]),  # A1111: an open bracket weighs the rest
    ("a: b", [[("a: b", 1.0)]]),
    ("a cat BREAK the photo", [[("a cat", 1.0)], [("the photo", 1.0)]]),
    ("(a BREAK cat)", [[("a", 1.1)], [("cat", 1.1)]]),
    ("BREAKFAST", [[("BREAKFAST", 1.0)]]),
    ("", [[]]),
])
def test_parse_follows_a1111(prompt, expected) -> None:
    assert weights(prompt) == expected


def test_only_syntax_free_prompts_are_plain() -> None:
    assert is_plain("a cat, photo of the cat") and is_plain("")
    assert not is_plain("a (cat)") and not is_plain(r"a \(cat\)") and not is_plain("a BREAK b")
    assert parse("a (cat:1.3)")[0][1] == Fragment("cat", 1.3)


def test_lora_tags_leave_the_prompt_in_order_first_of_a_name_counting() -> None:
    split = split_tags("a cat <lora:detail:0.8>, <LORA:ink> <lyco:old:-1> <lora:detail:2>")
    assert split == ("a cat ,   ", (("detail", 0.8), ("ink", 1.0), ("old", -1.0)))


@pytest.mark.parametrize("prompt", ["<lora:x:y>", "<lora::1>", "<lora:x:1:2>", "<lora:x:5>", "<lora:x:nan>"])
def test_bad_lora_tags_are_bad_field_on_the_prompt(prompt) -> None:
    error = split_tags(prompt)
    assert isinstance(error, ProtocolError) and (error.code, error.field) == (ErrorCode.BAD_FIELD, "job.prompt")
