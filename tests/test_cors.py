"""The pure CORS policy."""

from __future__ import annotations

import pytest

from mistral_compat.cors import CorsPolicy, parse_origin

STAINLESS = (
    "authorization,content-type,x-stainless-arch,x-stainless-lang,x-stainless-os,"
    "x-stainless-package-version,x-stainless-retry-count,x-stainless-runtime,"
    "x-stainless-runtime-version,x-stainless-timeout"
)


def test_any_origin_preflight_echoes_every_requested_header():
    h = CorsPolicy().headers("http://localhost:3000", [], ("POST", STAINLESS))
    assert h["access-control-allow-origin"] == "*"
    assert h["access-control-allow-methods"] == "POST"
    assert h["access-control-allow-headers"].split(", ") == STAINLESS.split(",")
    assert h["access-control-max-age"] == "86400"
    assert "access-control-allow-credentials" not in h


def test_preflight_header_list_is_sanitised():
    h = CorsPolicy().headers("http://a", [], ("post", "authorization, bad header\r\nx: y,x-ok"))
    assert h["access-control-allow-headers"] == "authorization, x-ok"
    assert h["access-control-allow-methods"] == "POST"
    assert "access-control-allow-headers" not in CorsPolicy().headers("http://a", [], ("GET", ""))


def test_response_exposes_present_headers():
    h = CorsPolicy().headers(
        "http://a",
        ["Content-Type", "x-ratelimit-remaining-tokens-minute", "set-cookie", "access-control-allow-origin", "Date"],
    )
    exposed = h["access-control-expose-headers"].split(", ")
    assert "x-ratelimit-remaining-tokens-minute" in exposed and "x-request-id" in exposed
    assert "set-cookie" not in exposed and "access-control-allow-origin" not in exposed
    assert "date" in exposed


def test_listed_origins_echoed_others_get_nothing():
    p = CorsPolicy(["https://chat.example.com", "http://localhost:3000/"])
    assert p.headers("https://chat.example.com", [])["access-control-allow-origin"] == "https://chat.example.com"
    assert p.headers("http://localhost:3000", [])["access-control-allow-origin"] == "http://localhost:3000"
    assert p.headers("https://evil.example", []) == {}
    assert p.headers(None, []) == {}
    assert p.vary(False) == ["Origin"]
    assert CorsPolicy().vary(False) == []


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("https://chat.example.com", "https://chat.example.com"),
        ("https://chat.example.com:443", "https://chat.example.com"),
        ("http://localhost:3000/", "http://localhost:3000"),
        ("HTTP://LOCALHOST:3000", "http://localhost:3000"),
    ],
)
def test_parse_origin(spec, expected):
    assert parse_origin(spec) == expected


@pytest.mark.parametrize(
    "spec,needle",
    [
        ("chat.example.com", "not an origin"),
        ("https://chat.example.com/app", "no path"),
        ("ftp://x", "not an origin"),
        ("https://x:99999", "invalid port"),
    ],
)
def test_bad_origins(spec, needle):
    with pytest.raises(ValueError, match=needle):
        parse_origin(spec)
