"""``flask cache``: look at the store, and act on it, from the command line.

Every command that touches the store calls it directly, not through the
guarded path requests use (which turns failures into misses), so an
unreachable store is reported, with exit status 1. Other exit statuses:
2 for a usage error, 3 when ``get`` finds no entry.

With several caches on one app, commands act on the first one set up;
``flask cache --cache N ...`` picks the N-th (``flask cache list`` shows them).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pprint
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from .entries import FrozenResponse, MemoEntry, VaryIndex
from .state import AppState
from .stats import Counters
from .stores import BaseStore

__all__ = ["EXIT_FAILED", "EXIT_NOT_FOUND", "cache_cli", "register"]

T = TypeVar("T")

#: The store could not be reached or refused, or the command failed (warm).
EXIT_FAILED = 1
#: ``get`` found no entry at the key.
EXIT_NOT_FOUND = 3

_SELECTED = "flask_stash.cache_number"
#: Read by ``ping``: a key nobody writes, so reading it changes nothing.
_PING_KEY = "flask-stash-ping"

_PER_PROCESS = (
    "Counters are kept per process: this command shows what its own process "
    "counted, not a server's. Read a server's with cache.stats in its code, "
    "flask_stash.metrics (Prometheus), or the cache_* signals."
)


class StoreFailed(click.ClickException):
    """The store could not be reached or refused: exit status 1."""

    exit_code = EXIT_FAILED


@click.group("cache", cls=AppGroup)
@click.option(
    "--cache",
    "number",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    metavar="N",
    help="Which cache of the app, in the order init_app set them up (see 'list').",
)
@click.pass_context
def cache_cli(ctx: click.Context, number: int) -> None:
    """Inspect and manage the Flask-Stash cache of this app.

    Commands reach the store itself and exit with status 1 when it cannot be
    reached; 'get' exits with 3 when there is no entry.
    """
    ctx.meta[_SELECTED] = number


def register(app: Flask) -> None:
    """Add ``flask cache`` to *app*'s command line, unless it has a ``cache`` command."""
    if "cache" not in app.cli.commands:
        app.cli.add_command(cache_cli)


# -- helpers -----------------------------------------------------------------


def _caches() -> list[tuple[Any, AppState]]:
    found = current_app.extensions.get("flask_stash", {})
    return [(cache, state) for cache, state in found.items() if isinstance(state, AppState)]


def _selected() -> tuple[Any, AppState]:
    caches = _caches()
    if not caches:
        raise click.ClickException("no Flask-Stash Cache is set up on this app")
    number: int = click.get_current_context().meta.get(_SELECTED, 1)
    if number > len(caches):
        raise click.UsageError(
            f"--cache {number}: this app has {len(caches)} cache(s); see 'flask cache list'"
        )
    return caches[number - 1]


def _where(store: BaseStore) -> str:
    described = store.describe()
    return (
        f"store {described}"
        if described.startswith(store.name)
        else (f"{store.name} store {described}")
    )


def _on_store(store: BaseStore, doing: str, action: Callable[[], T]) -> T:
    """Run *action* on the store; turn any failure into exit status 1 with a message."""
    try:
        return action()
    except Exception as exc:
        raise StoreFailed(
            f"cannot {doing}: the {_where(store)} is unreachable or failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _round_trip(store: BaseStore) -> float:
    """Seconds one read of the store takes; raises what the store raises."""
    started = time.perf_counter()
    store.get(_PING_KEY)
    return time.perf_counter() - started


def _note_if_local(store: BaseStore) -> None:
    if not store.shared:
        click.echo(
            f"note: the {store.name} store is not shared: this command sees only its own "
            "process's copy, not a server's.",
            err=True,
        )


def _ms(seconds: float) -> str:
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f} us"
    return f"{seconds * 1000:.2f} ms"


def _ratio(counters: Counters) -> str:
    ratio = counters.hit_ratio
    return "-" if ratio is None else f"{ratio:.1%}"


def _skips(counters: Counters) -> str:
    if not counters.skips:
        return "-"
    return ", ".join(f"{reason}: {n}" for reason, n in sorted(counters.skips.items()))


# -- commands ----------------------------------------------------------------


@cache_cli.command("list")
def list_command() -> None:
    """List the caches set up on this app, and their stores."""
    caches = _caches()
    if not caches:
        raise click.ClickException("no Flask-Stash Cache is set up on this app")
    selected: int = click.get_current_context().meta.get(_SELECTED, 1)
    for number, (_, state) in enumerate(caches, 1):
        store = state.store
        mark = "*" if number == selected else " "
        click.echo(
            f"{mark} {number}  {store.name:<10} {store.describe()}  "
            f"prefix {store.key_prefix!r}  default timeout {store.default_timeout}s"
        )


@cache_cli.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print the counters as JSON.")
def stats_command(as_json: bool) -> None:
    """Show hits, misses, stores, skips and errors, per view and in total.

    Counters are kept per process: this shows what this command's own
    process counted (from a shell, nothing), not what a running server
    counted. Read a server's counters with cache.stats in its code (or a
    test's CliRunner), flask_stash.metrics, or the cache_* signals. Also
    checks that the store answers, and exits with 1 if it does not.
    """
    _, state = _selected()
    stats = state.stats
    store = state.store
    error: str | None = None
    took: float | None = None
    try:
        took = _round_trip(store)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    if as_json:
        data = {
            "pid": os.getpid(),
            "per_process": True,
            **stats.as_dict(),
            "store": {
                "type": store.name,
                "address": store.describe(),
                "reachable": error is None,
                "error": error,
                "round_trip_ms": None if took is None else took * 1000,
            },
        }
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        total = stats.total
        click.echo(click.wrap_text(f"Process {os.getpid()}. {_PER_PROCESS}", 79))
        click.echo()
        click.echo(
            f"total  hits {total.hits}  misses {total.misses}  stores {total.stores}  "
            f"errors {total.errors}  hit ratio {_ratio(total)}"
        )
        click.echo(f"skips  {_skips(total)}")
        click.echo()
        if stats.by_name:
            width = max(len(name) for name in stats.by_name)
            click.echo(
                f"{'name':<{width}}  {'hits':>6}  {'misses':>6}  {'stores':>6}  "
                f"{'errors':>6}  {'ratio':>6}  skips"
            )
            for name, c in sorted(stats.by_name.items()):
                click.echo(
                    f"{name:<{width}}  {c.hits:>6}  {c.misses:>6}  {c.stores:>6}  "
                    f"{c.errors:>6}  {_ratio(c):>6}  {_skips(c)}"
                )
        else:
            click.echo("no lookups yet in this process")
        click.echo()
        if error is None and took is not None:
            click.echo(f"store  {store.describe()}: reachable, round trip {_ms(took)}")
    if error is not None:
        raise StoreFailed(f"the {_where(store)} is unreachable: {error}")


@cache_cli.command("ping")
@click.option(
    "--count", type=click.IntRange(min=1), default=3, show_default=True, help="Round trips."
)
def ping_command(count: int) -> None:
    """Reach the store: its type, where it is, and how long a round trip takes.

    The first round trip may include connecting; the best of the others is
    the store's latency from here.
    """
    _, state = _selected()
    store = state.store
    trips = [_on_store(store, "ping", lambda: _round_trip(store)) for _ in range(count)]
    later = trips[1:] or trips
    click.echo(f"type     {store.name}")
    click.echo(f"address  {store.describe()}")
    click.echo(
        f"latency  {_ms(min(later))} round trip (best of {len(later)}; first {_ms(trips[0])})"
    )


@cache_cli.command("clear")
def clear_command() -> None:
    """Remove every entry of this app's namespace (its key prefix), and nobody else's."""
    _, state = _selected()
    store = state.store
    _note_if_local(store)
    if not _on_store(store, "clear the cache", store.clear):
        raise StoreFailed(f"the {_where(store)} did not clear")
    click.echo(f"cleared the entries of prefix {store.key_prefix!r} in the {_where(store)}")


def _age(now: float, stored_at: float, fresh_until: float) -> str:
    text = f"stored {max(0.0, now - stored_at):.0f}s ago, "
    if not fresh_until:
        return text + "fresh forever"
    if fresh_until > now:
        return text + f"fresh for {fresh_until - now:.0f}s more"
    return text + f"stale for {now - fresh_until:.0f}s"


def _show(value: Any) -> None:
    now = time.time()
    if type(value) is FrozenResponse:
        click.echo(
            f"cached response: status {value.status}, {len(value.body)} bytes, "
            f"{_age(now, value.stored_at, value.fresh_until)}"
        )
        for name, header in value.headers:
            click.echo(f"{name}: {header}")
        click.echo()
        click.echo(value.body.decode("utf-8", "replace"))
    elif type(value) is MemoEntry:
        click.echo(f"memoized value, {_age(now, value.stored_at, value.fresh_until)}:")
        click.echo(pprint.pformat(value.value))
    elif type(value) is VaryIndex:
        click.echo(
            f"index of a response that varies on {', '.join(value.names)}: "
            "each variant is stored under a key of its own"
        )
    elif isinstance(value, str):
        click.echo(value)
    else:
        click.echo(pprint.pformat(value))


@cache_cli.command("get")
@click.argument("key")
def get_command(key: str) -> None:
    """Show the entry at KEY (exit status 3 if there is none).

    KEY is as the low-level API takes it: without the key prefix.
    """
    _, state = _selected()
    store = state.store
    _note_if_local(store)
    value = _on_store(store, f"read {key!r}", lambda: store.get(key))
    if value is None:
        click.echo(f"no entry at {key!r}", err=True)
        raise click.exceptions.Exit(EXIT_NOT_FOUND)
    _show(value)


@cache_cli.command("delete")
@click.argument("key")
def delete_command(key: str) -> None:
    """Remove the entry at KEY (without the key prefix)."""
    _, state = _selected()
    store = state.store
    _note_if_local(store)
    if _on_store(store, f"delete {key!r}", lambda: store.delete(key)):
        click.echo(f"deleted {key!r}")
    else:
        click.echo(f"no entry at {key!r}: nothing to delete")


@cache_cli.command("invalidate-tag")
@click.argument("tags", nargs=-1, required=True)
def invalidate_tag_command(tags: tuple[str, ...]) -> None:
    """Drop every entry carrying any of TAGS, for every process."""
    cache, state = _selected()
    store = state.store
    _note_if_local(store)
    _on_store(store, "invalidate tags", lambda: _round_trip(store))
    if not cache.invalidate_tags(*tags):
        raise StoreFailed(f"the {_where(store)} did not take the new tag versions")
    for tag in tags:
        click.echo(f"invalidated tag {tag!r}")


def _outcome(before: Counters, after: Counters) -> tuple[bool, str]:
    """Whether a warming request left an entry behind, and what happened."""
    if after.errors > before.errors:
        return False, "store failed"
    if after.stores > before.stores:
        return True, "stored"
    skipped = after.skips - before.skips
    if skipped:
        return False, "not stored: " + ", ".join(sorted(skipped))
    if after.hits > before.hits:
        return True, "already cached"
    if after.misses > before.misses:
        return False, "not stored"
    return False, "no cached view answered"


def _snapshot(counters: Counters) -> Counters:
    return dataclasses.replace(counters, skips=counters.skips.copy())


@cache_cli.command("warm")
@click.argument("urls", nargs=-1, required=True)
@click.option(
    "--base-url",
    help="Scheme and host for paths, e.g. https://example.com: the host is part of "
    "a page's key, so use the one visitors use. Default: SERVER_NAME, else localhost.",
)
def warm_command(urls: tuple[str, ...], base_url: str | None) -> None:
    """Fill the cache by requesting each of URLS (paths or full URLs) through the app.

    Exits with 1 if the store cannot be reached, or if a URL answered with an
    error or was not stored.
    """
    _, state = _selected()
    store = state.store
    if not store.shared:
        click.echo(
            f"note: the {store.name} store lives in one process: what this command stores "
            "is gone when it exits.",
            err=True,
        )
    _on_store(store, "warm the cache", lambda: _round_trip(store))
    client = current_app.test_client()
    warmed = 0
    for url in urls:
        before = _snapshot(state.stats.total)
        absolute = "://" in url
        try:
            if base_url is None or absolute:
                response = client.get(url)
            else:
                response = client.get(url, base_url=base_url)
        except Exception as exc:
            click.echo(f"---  failed: {type(exc).__name__}: {exc}  {url}")
            continue
        status = response.status_code
        response.close()
        ok, what = _outcome(before, state.stats.total)
        if status >= 400:
            ok, what = False, "error status"
        warmed += ok
        click.echo(f"{status}  {what}  {url}")
    click.echo(f"warmed {warmed} of {len(urls)} URL(s)")
    if warmed < len(urls):
        raise click.exceptions.Exit(EXIT_FAILED)
