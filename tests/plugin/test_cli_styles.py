"""``latentbrush styles`` and ``--style``: in process, against the scripted protocol server on a thread."""

from __future__ import annotations

import asyncio
import functools
import json
import threading

import plugin_fake_server
import pytest
from latentbrush.plugin.cli.commands import settings_from
from latentbrush.plugin.cli.main import EXIT_OK, EXIT_USAGE, build_parser, main
from latentbrush.plugin.cli.style_command import chosen_style, with_style
from latentbrush.protocol import LoraInfo, LoraRef, ServerHello
from plugin_fake_server import FakeServer

TOKEN = "style-token"


@pytest.fixture
def user_styles(tmp_path, monkeypatch):
    """The painter's style folder, in a config folder of the test's own."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "config"))  # the same on Windows
    folder = tmp_path / "config" / "latentbrush" / "styles"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def server(monkeypatch):
    """The fake server on its own loop and thread (the CLI runs its own ``asyncio.run``); it offers one LoRA."""
    monkeypatch.setattr(plugin_fake_server, "ServerHello",
                        functools.partial(ServerHello, loras=(LoraInfo("detail", "tiny"),)))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    fake = FakeServer(token=TOKEN, steps=2)
    asyncio.run_coroutine_threadsafe(fake.start(), loop).result(10)
    yield fake
    asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def write_style(folder, data) -> None:
    (folder / f"{data['name'].lower()}.json").write_text(json.dumps(data), encoding="utf-8")


MOODY = {"name": "Moody", "models": ["not-here", "FAKE"], "loras": [{"name": "detail", "weight": 0.6},
                                                                    {"name": "missing", "weight": 1.0}],
         "prompt": "moody shot of {prompt}, fog", "negative_prompt": "sunny", "sampler": "Euler a", "steps": 3,
         "cfg": 4.5, "live": {"steps": 2, "cfg": 2.0}}


def test_styles_lists_the_built_ins_and_the_users_with_problems_on_stderr(user_styles, capsys):
    write_style(user_styles, MOODY)
    write_style(user_styles, {"name": "Photo", "prompt": "{prompt}, my own photo"})
    (user_styles / "broken.json").write_text('{"name": "Broken", "steps": "many"}')
    assert main(["styles"]) == EXIT_OK
    out, err = capsys.readouterr()
    assert "Default  [builtin]" in out and "Ink sketch  [builtin]" in out
    assert "Photo  [user]" in out and "template: {prompt}, my own photo" in out and "Photo  [builtin]" not in out
    assert "Moody  [user]" in out and "models:   not-here, FAKE" in out
    assert "template: moody shot of {prompt}, fog" in out
    assert str(user_styles) in out
    assert "broken.json: steps: must be an integer" in err and "Broken" not in out


def test_a_style_reaches_the_job_and_explicit_flags_win(user_styles, server, tmp_path, capsys):
    write_style(user_styles, MOODY)
    common = ["generate", "--size", "32x32", "-p", "a harbour", "--negative", "people", "--url", server.url,
              "--token", TOKEN, "-o", str(tmp_path / "out.png")]
    assert main([*common, "--style", "moody"]) == EXIT_OK
    job = server.submitted[-1]
    assert (job.prompt, job.negative_prompt) == ("moody shot of a harbour, fog", "sunny, people")
    assert (job.model, job.sampler, job.steps, job.cfg) == ("fake", "Euler a", 3, 4.5)
    assert job.loras == (LoraRef("detail", 0.6),)
    assert "LoRAs skipped (the server does not offer them): missing" in capsys.readouterr().err

    assert main([*common, "--style", "Moody", "--steps", "5", "--cfg", "9", "-q"]) == EXIT_OK
    job = server.submitted[-1]
    assert (job.steps, job.cfg, job.prompt) == (5, 9.0, "moody shot of a harbour, fog")

    assert main(common) == EXIT_OK  # no style: the flags as they are
    job = server.submitted[-1]
    assert (job.prompt, job.negative_prompt, job.steps, job.cfg, job.loras) == ("a harbour", "people", 20, 7.0, None)


def test_an_unknown_style_is_a_usage_error_naming_the_styles(user_styles, capsys):
    write_style(user_styles, MOODY)
    assert main(["generate", "--size", "32x32", "--style", "Nope", "--url", "ws://127.0.0.1:9"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "no style named 'Nope'" in err and "Default, Photo" in err and "Moody" in err


def test_live_takes_the_styles_live_block_under_its_flags(user_styles):
    write_style(user_styles, MOODY)
    hello = ServerHello(protocol=1, minor=1, server="t", client_id="c", resumed=False, device="cpu", dtype="f",
                        models=plugin_fake_server.MODELS, upscalers=(), samplers=("Euler a",),
                        limits=plugin_fake_server.LIMITS, default_model="fake")
    args = build_parser().parse_args(["live", "--watch", "in.png", "--style", "moody", "-q"])
    settings = with_style(args, settings_from(args), chosen_style(args), hello)
    assert (settings.steps, settings.cfg, settings.sampler, settings.model) == (2, 2.0, "Euler a", "fake")
    args = build_parser().parse_args(["live", "--watch", "in.png", "--style", "moody", "--steps", "4", "-q"])
    settings = with_style(args, settings_from(args), chosen_style(args), hello)
    assert (settings.steps, settings.cfg) == (4, 2.0)
