"""The addon's options through mitmproxy, in-process (taddons): values parsed once into the shared Settings,
bad ones refused with OptionsError (at run time) or logged as an error (at start-up, which stops mitmdump;
that path through a real process is in test_hardening_*.py and test_e2e.py)."""

from __future__ import annotations

import logging

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons

import addon
from mistral_compat.jsonio import DEFAULT_MAX_BODY


def settings_of(mc: addon.MistralCompat):
    return mc.matcher.settings


def start(tctx, mc: addon.MistralCompat) -> None:
    """What mitmproxy does when it loads a script: configure with every option."""
    mc.configure(set(tctx.options.keys()))


async def test_defaults():
    mc = addon.build()
    with taddons.context(mc) as tctx:
        start(tctx, mc)
        s = settings_of(mc)
        assert (s.dry_run, s.max_body, s.answer_mode, s.native_clients) == (False, DEFAULT_MAX_BODY, "auto", ())
        assert s.hosts.patterns == ("api.mistral.ai", "codestral.mistral.ai")
        assert s.cors.allow_origin(None) == "*"


async def test_values_reach_every_part_through_one_settings_object():
    mc = addon.build()
    with taddons.context(mc) as tctx:
        start(tctx, mc)
        tctx.configure(
            mc,
            mistral_hosts=["llm.example.com"],
            mistral_max_body="2m",
            mistral_dry_run=True,
            mistral_answers="mistral",
            mistral_native_clients=["MyApp"],
            mistral_cors_origins=["https://chat.example.com"],
        )
        s = settings_of(mc)
        assert "llm.example.com" in s.hosts and s.max_body == 2 << 20 and s.dry_run
        assert s.answer_mode == "mistral" and s.native_clients == ("myapp",)
        assert s.cors.allow_origin("https://chat.example.com") == "https://chat.example.com"
        shared = {id(p.settings) for p in mc.parts if hasattr(p, "settings")}
        assert shared == {id(s)}


@pytest.mark.parametrize(
    "option,value,message",
    [
        ("mistral_hosts", ["not a host!"], "mistral_hosts: 'not a host!' is not a host name"),
        ("mistral_hosts", ["https://api.example.com/v1"], "mistral_hosts: "),
        ("mistral_max_body", "lots", "mistral_max_body: 'lots' is not a size"),
        ("mistral_max_body", "0", "mistral_max_body: "),
        ("mistral_cors_origins", ["chat.example.com"], "mistral_cors_origins: 'chat.example.com' is not an origin"),
        ("mistral_cors_origins", ["https://a.example/app"], "no path"),
        ("mistral_rate_limit", "0/s", "mistral_rate_limit: '0/s' would let no request through"),
        ("mistral_rate_limit", "abc", "mistral_rate_limit: cannot read 'abc' as a rate"),
        ("mistral_rate_limit", "1/h", "mistral_rate_limit: '1/h': unknown unit 'h'"),
    ],
)
async def test_a_bad_value_is_refused_and_the_value_before_stays(option, value, message):
    mc = addon.build()
    with taddons.context(mc) as tctx:
        start(tctx, mc)
        s = settings_of(mc)
        before = (s.hosts.patterns, s.max_body, s.cors.origins, s.rate)
        with pytest.raises(exceptions.OptionsError, match=message.replace("(", r"\(")):
            tctx.configure(mc, **{option: value})
        assert (s.hosts.patterns, s.max_body, s.cors.origins, s.rate) == before
        assert getattr(tctx.options, option) != value  # mitmproxy rolled the option back


async def test_answers_mode_has_choices():
    mc = addon.build()
    with taddons.context(mc) as tctx:
        start(tctx, mc)
        with pytest.raises(exceptions.OptionsError):
            tctx.configure(mc, mistral_answers="sometimes")
        assert settings_of(mc).answer_mode == "auto"


async def test_a_bad_value_at_start_up_is_logged_as_an_error(caplog):
    """At start-up mitmproxy would print a raised OptionsError with a traceback: it is logged instead, which
    makes mitmdump stop with "Error logged during startup" (through a real mitmdump: test_e2e.py)."""
    mc = addon.build()
    options = next(p for p in mc.parts if isinstance(p, addon.Options))
    with taddons.context(mc) as tctx:
        start(tctx, mc)
        assert options.started
        options.started = False  # as before the first configure
        with caplog.at_level(logging.ERROR):
            tctx.configure(mc, mistral_max_body="lots")
        assert options.started and settings_of(mc).max_body == DEFAULT_MAX_BODY
    assert "OptionsError: mistral_max_body: 'lots' is not a size" in caplog.text


async def test_unknown_mistral_options_are_named_at_start_up(caplog):
    mc = addon.build()
    with taddons.context(mc) as tctx:
        start(tctx, mc)
        tctx.options.update_defer(mistral_rate_limt="1/s")
        with caplog.at_level(logging.WARNING):
            mc.running()
        mc.done()
    assert "Unknown option 'mistral_rate_limt' ignored" in caplog.text


async def test_rate_limit_reaches_the_pacer_and_can_be_turned_off():
    mc = addon.build()
    pacing_part = next(p for p in mc.parts if isinstance(p, addon.Pacing))
    with taddons.context(mc) as tctx:
        start(tctx, mc)
        assert pacing_part.pacer.rate is None and not pacing_part.pacer.active
        tctx.configure(mc, mistral_rate_limit="60/min")
        assert str(pacing_part.pacer.rate) == "60/min" and pacing_part.pacer.rate.interval == 1.0
        tctx.configure(mc, mistral_rate_limit="")
        assert pacing_part.pacer.rate is None


async def test_the_key_injector_joins_the_chain_only_once_redirecting(monkeypatch):
    """KeyInjector (last in mitmproxy's chain) is added when mistral_redirect_openai is on, at start-up or
    later; without it, requests go through no extra addon."""
    monkeypatch.setenv("MISTRAL_API_KEY", "test-key-123")
    mc = addon.build()
    with taddons.context(mc) as tctx:
        start(tctx, mc)
        mc.running()
        assert tctx.master.addons.get("mistral_compat_key") is None
        tctx.configure(mc, mistral_redirect_openai=True)
        injector = tctx.master.addons.get("mistral_compat_key")
        assert isinstance(injector, addon.KeyInjector)
        tctx.configure(mc, mistral_redirect_openai=False)
        tctx.configure(mc, mistral_redirect_openai=True)
        assert tctx.master.addons.get("mistral_compat_key") is injector
        mc.done()
    mc = addon.build()
    with taddons.context(mc) as tctx:
        tctx.configure(mc, mistral_redirect_openai=True)  # on from the start: added when running
        assert tctx.master.addons.get("mistral_compat_key") is None
        mc.running()
        assert isinstance(tctx.master.addons.get("mistral_compat_key"), addon.KeyInjector)
        mc.done()


async def test_a_reloaded_script_replaces_the_key_injector_it_left(monkeypatch):
    """mitmproxy reloads addon.py when it changes: the new Redirect must own the KeyInjector in the chain,
    or the flows the old one gave the key to would keep it past the new one's done()."""
    monkeypatch.setenv("MISTRAL_API_KEY", "test-key-123")
    old, new = addon.build(), addon.build()
    with taddons.context(old) as tctx:
        start(tctx, old)
        tctx.configure(old, mistral_redirect_openai=True)
        old.running()
        old_injector = tctx.master.addons.get("mistral_compat_key")
        tctx.master.addons.remove(old)  # the reload: the old script out (done), the new one in
        tctx.master.addons.add(new)
        start(tctx, new)
        new.running()
        injector = tctx.master.addons.get("mistral_compat_key")
        assert isinstance(injector, addon.KeyInjector) and injector is not old_injector
        assert old_injector not in tctx.master.addons.chain
        new.done()
