"""The options' declarations and parsing (pure); the same options through mitmproxy are in test_options.py."""

from __future__ import annotations

import pytest

from mistral_compat import settings
from mistral_compat.settings import OPTIONS, Settings


def test_every_option_is_named_mistral_and_documented():
    assert len({o.name for o in OPTIONS}) == len(OPTIONS)
    for o in OPTIONS:
        assert o.name.startswith("mistral_") and len(o.help) > 20


def test_values_parsed_into_fields():
    s = Settings()
    s.set("mistral_hosts", ["llm.example.com", "*.corp.example"])
    assert "llm.example.com" in s.hosts and "a.corp.example" in s.hosts and "api.mistral.ai" in s.hosts
    s.set("mistral_max_body", "1k")
    assert s.max_body == 1024
    s.set("mistral_answers", "openai")
    assert s.answer_mode == "openai"
    s.set("mistral_native_clients", [" MyApp ", ""])
    assert s.native_clients == ("myapp",)
    s.set("mistral_cors_origins", ["https://a.example"])
    assert s.cors.allow_origin("https://a.example") == "https://a.example"
    assert s.set("mistral_openapi", "x.yaml") is False  # read by the rules loader, not kept here


@pytest.mark.parametrize(
    "option,value,needle",
    [
        ("mistral_hosts", ["bad host!"], "not a host name"),
        ("mistral_max_body", "lots", "not a size"),
        ("mistral_answers", "sometimes", "not one of auto, openai, mistral"),
        ("mistral_cors_origins", ["chat.example.com"], "not an origin"),
    ],
)
def test_a_bad_value_is_a_value_error_and_the_field_stays(option, value, needle):
    s = Settings()
    before = getattr(s, settings.PARSERS[option][0])
    with pytest.raises(ValueError, match=needle):
        s.set(option, value)
    assert getattr(s, settings.PARSERS[option][0]) is before
