"""What is kept in the process, outside the stores, stays bounded."""

from __future__ import annotations

from flask import Flask

from flask_stash import Cache
from flask_stash import keys as keys_module
from flask_stash.keys import MEMO_QUERY_LENGTH, canonical_query


def test_long_query_strings_are_not_remembered() -> None:
    keys_module._remembered.cache_clear()
    long_queries = [f"q={n}&pad={'x' * 60_000}" for n in range(300)]
    for query in long_queries:
        assert canonical_query(query).startswith("pad=")  # sorted, still right
    assert keys_module._remembered.cache_info().currsize == 0
    canonical_query("b=2&a=1")
    assert keys_module._remembered.cache_info().currsize == 1


def test_the_query_memo_holds_a_bounded_number_of_bounded_entries() -> None:
    keys_module._remembered.cache_clear()
    for n in range(5000):
        canonical_query(f"n={n}&" + "y" * (MEMO_QUERY_LENGTH - 20))
    info = keys_module._remembered.cache_info()
    assert info.currsize == info.maxsize == 4096


def test_a_view_with_a_long_query_is_still_cached_under_a_short_key() -> None:
    app = Flask(__name__)
    cache = Cache(app)
    runs: list[int] = []

    @app.route("/search")
    @cache.cached(timeout=60)
    def search() -> str:
        runs.append(1)
        return "results"

    client = app.test_client()
    query = "q=" + "z" * 60_000
    assert client.get(f"/search?{query}").text == client.get(f"/search?{query}").text
    assert runs == [1]
    with app.test_request_context(f"/search?{query}"):
        key = search.make_cache_key()  # type: ignore[attr-defined]
    assert len(key) < 400
