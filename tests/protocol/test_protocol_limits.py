"""field_range: the UI range of a job field, from its metadata, capped by a server hello's limits."""

from __future__ import annotations

import pytest
from latentbrush.protocol import JobRequest, Limits, Size, UpscaleParams, field_range

SERVER = Limits(max_frame_bytes=1 << 20, max_pixels=1 << 20, max_queue=4, max_batch=4, max_steps=150)


def test_ranges_are_the_field_metadata_without_a_server():
    assert field_range(JobRequest, "steps") == (1, 200)
    assert field_range(JobRequest, "cfg") == (0.0, 30.0)
    assert field_range(JobRequest, "batch") == (1, 16)
    assert field_range(JobRequest, "strength") == (0.0, 1.0)
    assert field_range(JobRequest, "seed") == (0, 2**32 - 1)
    assert field_range(UpscaleParams, "scale") == (1.0, 8.0)
    assert field_range(Size, "width") == (1, 65536)


def test_the_server_hello_caps_steps_and_batch_only():
    assert field_range(JobRequest, "steps", SERVER) == (1, 150)  # the 200-vs-150 mismatch of issue 10
    assert field_range(JobRequest, "batch", SERVER) == (1, 4)
    assert field_range(JobRequest, "cfg", SERVER) == (0.0, 30.0)
    generous = Limits(max_frame_bytes=1, max_pixels=1, max_queue=1, max_batch=99, max_steps=1000)
    assert field_range(JobRequest, "steps", generous) == (1, 200), "a server never widens the protocol's range"
    stingy = Limits(max_frame_bytes=1, max_pixels=1, max_queue=1, max_batch=0, max_steps=0)
    assert field_range(JobRequest, "batch", stingy) == (1, 1)


def test_a_field_without_a_numeric_range_is_a_programming_error():
    with pytest.raises(KeyError, match="prompt"):
        field_range(JobRequest, "prompt")
    with pytest.raises(KeyError):
        field_range(JobRequest, "no_such_field")
