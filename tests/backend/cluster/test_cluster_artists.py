"""The artists file (``cluster/artists.py``): formats, refusals, and revocation by editing it."""

from __future__ import annotations

import os

import pytest
from latentbrush.backend.cluster.artists import Artists, ArtistsFileError, parse_artists
from latentbrush.protocol import ErrorCode

ANA, BEN = "ana-token-0123456789abcdef", "ben-token-0123456789abcdef"


def test_lines_and_json_give_the_same_artists():
    lines = f"# studio artists\nana {ANA}\nben: {BEN}  # joined in May\n\n"
    assert parse_artists(lines) == parse_artists(f'{{"ana": "{ANA}", "ben": "{BEN}"}}') == {"ana": ANA, "ben": BEN}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("ana", "line 1 of the artists file must be NAME TOKEN"),
        ("ana short", "shorter than 16"),
        (f"ana {ANA}\nana {BEN}", "ana is listed twice"),
        (f"ana {ANA}\nben {ANA}", "same token as another artist"),
        (f"an/a {ANA}", "an artist's name is"),
        ('{"ana": 1}', "one JSON object"),
        ('{"ana": ', "not valid JSON"),
    ],
)
def test_a_broken_file_is_refused_without_showing_tokens(text, says):
    with pytest.raises(ArtistsFileError) as raised:
        parse_artists(text)
    assert says in str(raised.value) and ANA not in str(raised.value)


def write(path, text):
    stat = path.stat() if path.exists() else None
    path.write_text(text, encoding="utf-8")
    if stat is not None:  # a later modification time even on a coarse clock: the edit is seen
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_tokens_name_artists_and_an_edit_revokes_one(tmp_path):
    path = tmp_path / "artists.txt"
    write(path, f"ana {ANA}\nben {BEN}\n")
    artists = Artists(path)
    assert artists.identify(ANA) == "ana" and artists.identify(BEN) == "ben" and artists.identify("x" * 20) is None
    write(path, f"ana {ANA}\n")
    assert artists.identify(BEN) is None and artists.identify(ANA) == "ana"


def test_a_file_broken_by_an_edit_admits_nobody_until_fixed(tmp_path):
    path = tmp_path / "artists.txt"
    write(path, f"ana {ANA}\n")
    artists = Artists(path)
    write(path, f"ana {ANA}\nben\n")
    assert artists.identify(ANA) is None
    write(path, f"ana {ANA}\nben {BEN}\n")
    assert artists.identify(BEN) == "ben"


def test_a_missing_file_at_start_is_an_error(tmp_path):
    with pytest.raises(OSError):
        Artists(tmp_path / "nope.txt")


def test_the_per_artist_cap(tmp_path):
    path = tmp_path / "artists.json"
    write(path, f'{{"ana": "{ANA}"}}')
    artists = Artists(path, max_queue=2)
    assert artists.refusal("ana", 1) is None
    refused = artists.refusal("ana", 2)
    assert refused is not None and refused.code == ErrorCode.QUEUE_FULL and "at most 2 per artist" in refused.message
