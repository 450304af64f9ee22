"""mistral_compat.ratelimit: the rate option, API-key ids, Retry-After and the log note (issue 15)."""

from __future__ import annotations

import email.utils
import hashlib
import re
import time

import pytest

from mistral_compat.pacing import NO_WAIT, Wait
from mistral_compat.ratelimit import (
    ANONYMOUS,
    MAX_RETRY_AFTER,
    Rate,
    key_from_headers,
    key_id,
    parse_rate,
    parse_retry_after,
    secret_from_headers,
    wait_note,
)

ONE = parse_rate("1/s")

# ---------------------------------------------------------------------------
# parse_rate


@pytest.mark.parametrize(
    "text, canonical, interval",
    [
        ("1/s", "1/s", 1.0),
        ("0.5/s", "0.5/s", 2.0),
        ("60/min", "60/min", 1.0),
        ("1/min", "1/min", 60.0),
        (" 2 / sec ", "2/s", 0.5),
        ("1/second", "1/s", 1.0),
        ("3/Seconds", "3/s", 1 / 3),
        ("1/m", "1/min", 60.0),
        ("30/Minute", "30/min", 2.0),
        (".5/s", "0.5/s", 2.0),
        ("01.50/S", "1.5/s", 1 / 1.5),
        ("100/s", "100/s", 0.01),
        ("6000/min", "6000/min", 0.01),
    ],
)
def test_parse_rate_accepts(text, canonical, interval):
    rate = parse_rate(text)
    assert isinstance(rate, Rate) and str(rate) == canonical
    assert rate.interval == pytest.approx(interval)
    assert parse_rate(str(rate)) == rate


@pytest.mark.parametrize("text", ["", "   ", None])
def test_parse_rate_empty_is_no_pacing(text):
    assert parse_rate(text) is None


@pytest.mark.parametrize(
    "text, says",
    [
        ("0/s", "would let no request through"),
        ("0.0/min", "would let no request through"),
        ("-1/s", "'-1' is not a number above 0"),
        ("abc", "cannot read 'abc' as a rate"),
        ("1", "cannot read '1' as a rate"),
        ("1/h", "unknown unit 'h'"),
        ("1/hour", "unknown unit 'hour'"),
        ("1/s/s", "cannot read '1/s/s' as a rate"),
        ("inf/s", "'inf' is not a number above 0"),
        ("nan/s", "'nan' is not a number above 0"),
        ("1e3/s", "'1e3' is not a number above 0"),
        ("1/", "the unit is missing"),
        ("/s", "lacks a number"),
        ("101/s", "faster than 100/s"),
        ("999999999999999999999999/s", "faster than 100/s"),
        ("0.01/min", "slower than one request an hour"),
        ("1" * 200 + "/s", "too long"),
        ("\x1b[31m1/s\n", "'\\x1b[31m1' is not"),  # control characters are shown escaped, never printed raw
    ],
)
def test_parse_rate_rejects_with_a_message_to_act_on(text, says):
    with pytest.raises(ValueError) as info:
        parse_rate(text)
    message = str(info.value)
    assert says in message
    assert "1/s" in message and "60/min" in message  # an example of what works
    assert "\n" not in message and "\x1b" not in message


def test_spacing_adds_a_safety_margin():
    assert parse_rate("1/s").spacing == pytest.approx(1.05)  # 5 %, capped at 50 ms
    assert parse_rate("10/s").spacing == pytest.approx(0.105)
    assert parse_rate("100/s").spacing == pytest.approx(0.0105)
    assert parse_rate("1/min").spacing == pytest.approx(60.05)
    assert parse_rate("0.5/s").spacing == pytest.approx(2.05)


# ---------------------------------------------------------------------------
# Keys


def test_key_id_is_short_stable_and_salted():
    ident = key_id("sk-secret-123")
    assert re.fullmatch(r"key-[0-9a-f]{8}", ident)
    assert key_id("sk-secret-123") == ident
    assert key_id("sk-secret-124") != ident
    assert "secret" not in ident
    # a keyed hash with a per-process salt: not the plain hash anybody could compute from a list of keys
    assert ident[4:] != hashlib.sha256(b"sk-secret-123").hexdigest()[:8]
    assert ident[4:] != hashlib.md5(b"sk-secret-123").hexdigest()[:8]


def test_key_id_of_odd_text():
    assert re.fullmatch(r"key-[0-9a-f]{8}", key_id("\udcff lone surrogate \u00e9"))
    assert key_id("") != key_id(" ")


@pytest.mark.parametrize(
    "headers, secret",
    [
        ({"Authorization": "Bearer sk-1"}, "sk-1"),
        ({"authorization": "bearer   sk-1 "}, "sk-1"),
        ({"AUTHORIZATION": "sk-1"}, "sk-1"),  # no scheme: the value itself
        ({"Authorization": "Basic dXNlcjpwdw=="}, "dXNlcjpwdw=="),  # any scheme
        ({"x-api-key": "sk-2"}, "sk-2"),
        ({"X-Api-Key": " sk-2 "}, "sk-2"),
        ({"Authorization": "Bearer sk-1", "x-api-key": "sk-2"}, "sk-1"),  # Authorization first
        ({"Authorization": "", "x-api-key": "sk-2"}, "sk-2"),
        ({"Authorization": "   ", "x-api-key": "sk-2"}, "sk-2"),
        ({"Content-Type": "application/json"}, None),
        ({"x-api-key": ""}, None),
        ({}, None),
    ],
)
def test_secret_from_headers(headers, secret):
    assert secret_from_headers(headers) == secret
    assert key_from_headers(headers) == (key_id(secret) if secret else ANONYMOUS)


def test_same_key_by_either_header_is_one_queue():
    assert key_from_headers({"Authorization": "Bearer k"}) == key_from_headers({"x-api-key": "k"})


def test_key_from_mitmproxy_headers():
    from mitmproxy.http import Headers  # the addon passes flow.request.headers

    assert key_from_headers(Headers(authorization="Bearer sk-9")) == key_id("sk-9")
    assert key_from_headers(Headers([(b"X-API-KEY", b"sk-8")])) == key_id("sk-8")
    assert key_from_headers(Headers(host="api.mistral.ai")) == ANONYMOUS


# ---------------------------------------------------------------------------
# parse_retry_after

NOW = 1_780_000_000.0


@pytest.mark.parametrize(
    "value, seconds",
    [
        ("2", 2.0),
        (" 3 ", 3.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("120", 120.0),
        ("86400", MAX_RETRY_AFTER),  # clamped
        ("999999999999", MAX_RETRY_AFTER),
        (None, 1.0),
        ("", 1.0),
        ("soon", 1.0),
        ("-1", 1.0),
        ("1e3", 1.0),
        ("inf", 1.0),
        ("nan", 1.0),
        ("2, 3", 1.0),
        ("9" * 100, 1.0),
    ],
)
def test_parse_retry_after_seconds_and_junk(value, seconds):
    assert parse_retry_after(value, NOW) == pytest.approx(seconds)


def test_parse_retry_after_http_date():
    in_5s = email.utils.formatdate(NOW + 5, usegmt=True)  # "Wed, 28 May 2026 ... GMT"
    assert parse_retry_after(in_5s, NOW) == pytest.approx(5.0)
    assert parse_retry_after(email.utils.formatdate(NOW - 30, usegmt=True), NOW) == 0.0  # past: no hold
    assert parse_retry_after(email.utils.formatdate(NOW + 86400, usegmt=True), NOW) == MAX_RETRY_AFTER
    no_zone = email.utils.formatdate(NOW + 7, usegmt=True).replace(" GMT", " -0000")
    assert parse_retry_after(no_zone, NOW) == pytest.approx(7.0)
    assert parse_retry_after("Mon, 99 Foo 2026 25:61:00 GMT", NOW) == 1.0
    assert 0.0 <= parse_retry_after(email.utils.formatdate(time.time() + 2, usegmt=True), time.time()) <= 2.0


# ---------------------------------------------------------------------------
# What the log line says


def test_wait_note():
    assert wait_note(Wait(2.04, "rate"), ONE) == "waited 2.0 s for mistral_rate_limit 1/s"
    assert wait_note(Wait(2.0, "hold"), ONE) == "waited 2.0 s for a 429's Retry-After"
    assert wait_note(Wait(2.0, "hold"), None) == "waited 2.0 s for a 429's Retry-After"
    assert wait_note(Wait(0.0, ""), ONE) == ""
    assert wait_note(NO_WAIT, None) == ""
    assert wait_note(1.5, parse_rate("60/min")) == "waited 1.5 s for mistral_rate_limit 60/min"
    waited = Wait(1.25, "rate")
    assert isinstance(waited, float) and waited + 1 == 2.25 and f"{waited:.1f}" == "1.2"
    assert repr(waited) == "Wait(1.25, 'rate')"
