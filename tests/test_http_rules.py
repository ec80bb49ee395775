"""flask_stash.http on plain data: storing rules, Cache-Control, Vary, ETag and 304 headers."""

from __future__ import annotations

import pytest

from flask_stash import http

ALLOWED_304 = {"cache-control", "content-location", "date", "etag", "expires", "vary"}


# -- what may be stored ---------------------------------------------------------


def test_default_cacheable_statuses_are_those_of_rfc_9110() -> None:
    assert frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501}) == (
        http.DEFAULT_CACHEABLE_STATUSES
    )


@pytest.mark.parametrize("status", sorted(http.DEFAULT_CACHEABLE_STATUSES))
def test_cacheable_statuses_may_be_stored(status: int) -> None:
    assert http.why_not_storable(status, []) is None


@pytest.mark.parametrize("status", [201, 202, 206, 302, 303, 304, 307, 400, 401, 403, 500, 503])
def test_other_statuses_are_not_stored(status: int) -> None:
    assert http.why_not_storable(status, []) == f"status {status}"


def test_cacheable_statuses_can_be_replaced() -> None:
    only = frozenset({200, 503})
    assert http.why_not_storable(503, [], cacheable_statuses=only) is None
    assert http.why_not_storable(404, [], cacheable_statuses=only) == "status 404"


@pytest.mark.parametrize("name", ["Set-Cookie", "set-cookie", "SET-COOKIE"])
def test_set_cookie_is_never_stored(name: str) -> None:
    assert http.why_not_storable(200, [(name, "sid=1; Path=/")]) == "Set-Cookie"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("private", "Cache-Control: private"),
        ("Private", "Cache-Control: private"),
        ('private="Set-Cookie"', "Cache-Control: private"),
        ("max-age=60, PRIVATE", "Cache-Control: private"),
        ("no-store", "Cache-Control: no-store"),
        ("NO-STORE", "Cache-Control: no-store"),
        ("public, No-Store", "Cache-Control: no-store"),
    ],
)
def test_private_and_no_store_are_never_stored(value: str, reason: str) -> None:
    assert http.why_not_storable(200, [("Cache-Control", value)]) == reason


def test_directives_in_several_cache_control_headers_all_count() -> None:
    headers = [("Cache-Control", "max-age=60"), ("cache-control", "private")]
    assert http.why_not_storable(200, headers) == "Cache-Control: private"


@pytest.mark.parametrize("value", ["*", "Accept-Language, *", " * "])
def test_vary_star_is_never_stored(value: str) -> None:
    assert http.why_not_storable(200, [("Vary", value)]) == "Vary: *"


def test_vary_on_named_headers_may_be_stored() -> None:
    assert http.why_not_storable(200, [("Vary", "Accept-Language")]) is None


def test_status_is_checked_before_headers() -> None:
    assert http.why_not_storable(503, [("Set-Cookie", "a=1")]) == "status 503"


def test_answer_to_an_authorized_request_is_not_stored() -> None:
    assert http.why_not_storable(200, [], request_authorized=True) == "Authorization"
    assert (
        http.why_not_storable(200, [("Cache-Control", "max-age=60")], request_authorized=True)
        == "Authorization"
    )


@pytest.mark.parametrize(
    "value", ["public", "Public, max-age=60", "s-maxage=60", "must-revalidate"]
)
def test_answer_to_an_authorized_request_is_stored_when_the_response_allows(value: str) -> None:
    assert http.why_not_storable(200, [("Cache-Control", value)], request_authorized=True) is None


def test_public_does_not_override_private_or_set_cookie() -> None:
    assert http.why_not_storable(200, [("Cache-Control", "public, private")]) == (
        "Cache-Control: private"
    )
    headers = [("Cache-Control", "public"), ("Set-Cookie", "a=1")]
    assert http.why_not_storable(200, headers, request_authorized=True) == "Set-Cookie"


# -- header parsing ---------------------------------------------------------------


def test_header_values_match_names_case_insensitively() -> None:
    headers = [("X-A", "1"), ("x-a", "2"), ("X-B", "3")]
    assert http.header_values(headers, "X-A") == ["1", "2"]
    assert http.header_values(headers, "x-b") == ["3"]
    assert http.header_values(headers, "x-c") == []


def test_cache_control_lower_cases_names_and_keeps_arguments() -> None:
    headers = [("Cache-Control", 'Max-Age=60, PUBLIC, private="Set-Cookie, X-A", No-Cache')]
    assert http.cache_control(headers) == {
        "max-age": "60",
        "public": None,
        "private": "Set-Cookie, X-A",
        "no-cache": None,
    }


def test_cache_control_ignores_empty_items_and_absent_header() -> None:
    assert http.cache_control([]) == {}
    assert http.cache_control([("Cache-Control", " , public ,, ")]) == {"public": None}


def test_vary_names_are_lower_cased_sorted_and_unique() -> None:
    headers = [("Vary", "Accept-Language, accept-encoding"), ("vary", "ACCEPT-LANGUAGE")]
    assert http.vary_names(headers) == ("accept-encoding", "accept-language")


def test_absent_vary_differs_from_empty_vary() -> None:
    assert http.vary_names([]) is None
    assert http.vary_names([("Vary", "")]) == ()


# -- entity tags ------------------------------------------------------------------


def test_strong_etag_is_quoted_stable_and_depends_on_the_body() -> None:
    tag = http.strong_etag(b"hello")
    assert tag.startswith('"')
    assert tag.endswith('"')
    assert not tag.startswith("W/")
    assert tag == http.strong_etag(b"hello")
    assert tag != http.strong_etag(b"hello!")


@pytest.mark.parametrize(
    ("if_none_match", "etag", "expected"),
    [
        ('"a"', '"a"', True),
        ('"a"', '"b"', False),
        ('"x", "a"', '"a"', True),
        ('"x","y"', '"a"', False),
        ("*", '"a"', True),
        (" * ", '"a"', True),
        ('W/"a"', '"a"', True),  # If-None-Match uses the weak comparison
        ('"a"', 'W/"a"', True),
        ('W/"a"', 'W/"a"', True),
        ('"a,b"', '"a,b"', True),  # a comma inside quotes is part of the tag
        ('"a,b"', '"a"', False),
        ("", '"a"', False),
    ],
)
def test_etag_matches(if_none_match: str, etag: str, expected: bool) -> None:
    assert http.etag_matches(if_none_match, etag) is expected


def test_not_modified_headers_keep_only_what_rfc_9110_lists() -> None:
    stored = [
        ("Content-Type", "text/html"),
        ("Content-Length", "5"),
        ("ETag", '"a"'),
        ("Cache-Control", "public"),
        ("Content-Location", "/x"),
        ("Date", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ("Expires", "Mon, 01 Jan 2024 00:05:00 GMT"),
        ("Vary", "Accept-Language"),
        ("Set-Cookie", "a=1"),
        ("X-Custom", "1"),
        ("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
    ]
    kept = http.not_modified_headers(stored)
    assert {name.lower() for name, _ in kept} == ALLOWED_304
    assert ("ETag", '"a"') in kept
    assert http.NOT_MODIFIED_HEADERS == ALLOWED_304
