"""``flask cache``: look at the store, and act on it, from the command line.

Every command that touches the store calls it directly, not through the
guarded path requests use (which turns failures into misses), so an
unreachable store is reported, with exit status 1. Other exit statuses:
2 for a usage error, 3 when ``get`` finds no entry.

With several caches on one app, commands act on the first one set up;
``flask cache --cache N ...`` picks the N-th (``flask cache list`` shows them).

A page's key holds the scheme, host and root path it was requested on, so
``warm`` and ``key`` build their requests on the URL visitors use:
``--base-url``, else ``SERVER_NAME`` with ``PREFERRED_URL_SCHEME`` and
``APPLICATION_ROOT``, else ``http://localhost`` (said so on stderr).
"""

from __future__ import annotations

import json
import os
import pprint
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from .entries import FrozenResponse, MemoEntry, VaryIndex
from .errors import ConfigurationError
from .signals import cache_error, cache_hit, cache_miss, cache_skipped, cache_stored
from .state import AppState
from .stats import Counters
from .stores import BaseStore
from .views import CachedView

__all__ = ["EXIT_FAILED", "EXIT_NOT_FOUND", "CliConfigurationError", "cache_cli", "register"]

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


class CliConfigurationError(ConfigurationError, click.ClickException):
    """A ConfigurationError that the ``flask`` command shows as one line, not a traceback.

    ``init_app`` runs while ``flask`` loads the app, before any command of
    this group can catch anything; click reports an exception of this class
    raised there as ``Error: <message>``, with exit status 1. Code that
    catches ConfigurationError still catches it.
    """

    exit_code = EXIT_FAILED

    def __init__(self, message: str) -> None:
        click.ClickException.__init__(self, message)


class Failed(click.ClickException):
    """The command cannot do what was asked (not supported, not cached): exit status 1."""

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


def _figures(store: BaseStore) -> tuple[dict[str, int], str | None]:
    """The store's own figures, or none and why; a failure here fails nothing else."""
    try:
        return store.figures(), None
    except Exception as exc:
        return {}, f"{type(exc).__name__}: {exc}"


@cache_cli.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print the counters as JSON.")
def stats_command(as_json: bool) -> None:
    """Show hits, misses, stores, skips and errors, per view and in total, and the store's own.

    Counters are kept per process: this shows what this command's own
    process counted (from a shell, nothing), not what a running server
    counted. Read a server's counters with cache.stats in its code (or a
    test's CliRunner), flask_stash.metrics, or the cache_* signals. The
    store's own figures (entries, bytes, and a server's hits and misses)
    cover every process using it. Also checks that the store answers, and
    exits with 1 if it does not.
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
    figures, figures_error = _figures(store) if error is None else ({}, None)
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
                "shared": store.shared,
                "figures": figures,
                "figures_error": figures_error,
            },
        }
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        total = stats.total
        click.echo(click.wrap_text(f"Process {os.getpid()}. {_PER_PROCESS}", 79), err=True)
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
            _show_figures(store, figures, figures_error)
    if error is not None:
        raise StoreFailed(f"the {_where(store)} is unreachable: {error}")


def _show_figures(store: BaseStore, figures: dict[str, int], error: str | None) -> None:
    if error is not None:
        click.echo(f"store figures unavailable: {error}")
        return
    if not figures:
        click.echo(f"the {store.name} store keeps no figures of its own")
        return
    whose = "every process using it" if store.shared else "this process's copy only"
    click.echo(f"store's own figures ({whose}):")
    width = max(len(name) for name in figures)
    for name, value in figures.items():
        click.echo(f"  {name:<{width}}  {value}")


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
@click.option("--yes", "-y", is_flag=True, help="Clear without asking first.")
def clear_command(yes: bool) -> None:
    """Remove every entry of this app's namespace (its key prefix), and nobody else's.

    Asks first, unless given --yes.
    """
    _, state = _selected()
    store = state.store
    _note_if_local(store)
    _on_store(store, "clear the cache", lambda: _round_trip(store))
    if not yes:
        click.confirm(
            f"Remove every entry of prefix {store.key_prefix!r} from the {_where(store)}?",
            abort=True,
        )
    if not _on_store(store, "clear the cache", store.clear):
        raise StoreFailed(f"the {_where(store)} did not clear")
    click.echo(f"cleared the entries of prefix {store.key_prefix!r} in the {_where(store)}")


@cache_cli.command("keys")
@click.argument("pattern", default="*")
def keys_command(pattern: str) -> None:
    """List the keys of this app's namespace that match PATTERN, one a line.

    PATTERN is a glob (* ? [abc]), matched against keys without the key
    prefix, as 'get' and 'delete' take them; the default lists every key.
    The memory and disk stores read their own data, Redis walks its keys
    with SCAN, memcached with its LRU crawler; other stores cannot list
    keys (exit status 1).
    """
    _, state = _selected()
    store = state.store
    _note_if_local(store)
    count = 0
    try:
        for key in store.keys(pattern):
            click.echo(key)
            count += 1
    except NotImplementedError as exc:
        raise Failed(f"cannot list keys: not supported by this store: {exc}") from exc
    except Exception as exc:
        raise StoreFailed(
            f"cannot list keys: the {_where(store)} is unreachable or failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    click.echo(f"{count} key(s) matching {pattern!r} under prefix {store.key_prefix!r}", err=True)


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


def _outcome(counted: Counters) -> tuple[bool, str]:
    """Whether a warming request left an entry behind, and what happened."""
    if counted.errors:
        return False, "store failed"
    if counted.stores:
        return True, "stored"
    if counted.skips:
        return False, "not stored: " + ", ".join(sorted(counted.skips))
    if counted.hits:
        return True, "already cached"
    if counted.misses:
        return False, "not stored"
    return False, "no cached view answered"


class _Recorder:
    """What the cache did for each warming request, counted in the thread that made it.

    The app's counters are shared by every thread, so with several requests
    at once they cannot say which did what; the signals are sent in the
    request's own thread, and each thread makes one request at a time.
    """

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.local = threading.local()
        self.receivers = [
            (cache_hit, self._hit),
            (cache_miss, self._miss),
            (cache_stored, self._stored),
            (cache_skipped, self._skipped),
            (cache_error, self._error),
        ]

    def __enter__(self) -> _Recorder:
        # Connected for any sender (and the sender checked in _counters):
        # blinker keeps a receiver listed after a per-sender disconnect, and
        # a listed receiver makes every later hit send its signal.
        for signal, receiver in self.receivers:
            signal.connect(receiver, weak=False)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signal, receiver in self.receivers:
            signal.disconnect(receiver)

    def start(self) -> Counters:
        """Count what this thread's next request does into new counters."""
        counters = self.local.counters = Counters()
        return counters

    def _counters(self, sender: object) -> Counters | None:
        if sender is not self.app:
            return None
        found: Counters | None = getattr(self.local, "counters", None)
        return found

    def _hit(self, sender: object, **extra: Any) -> None:
        if (counters := self._counters(sender)) is not None:
            counters.hits += 1

    def _miss(self, sender: object, **extra: Any) -> None:
        if (counters := self._counters(sender)) is not None:
            counters.misses += 1

    def _stored(self, sender: object, **extra: Any) -> None:
        if (counters := self._counters(sender)) is not None:
            counters.stores += 1

    def _skipped(self, sender: object, reason: str = "", **extra: Any) -> None:
        if (counters := self._counters(sender)) is not None:
            counters.skips[reason] += 1

    def _error(self, sender: object, **extra: Any) -> None:
        if (counters := self._counters(sender)) is not None:
            counters.errors += 1


class _Progress:
    """Done, total and failed, on stderr, while the outcome lines go to stdout.

    On a terminal it is one line redrawn in place; otherwise a line at each
    tenth of the way, so a log holds a few lines rather than one per URL.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.live = sys.stderr.isatty()
        self.every = max(1, total // 10)

    def report(self, ok: bool, line: str) -> None:
        self.done += 1
        self.failed += not ok
        if self.live:
            click.echo("\r\033[K", nl=False, err=True)
        click.echo(line)
        if self.live:
            click.echo(self.text(), nl=False, err=True)
        elif self.done % self.every == 0 or self.done == self.total:
            click.echo(self.text(), err=True)

    def text(self) -> str:
        return f"warming: {self.done}/{self.total} done, {self.failed} failed"

    def close(self) -> None:
        if self.live:
            click.echo("\r\033[K", nl=False, err=True)


def _base_url(app: Flask, given: str | None) -> tuple[str, str | None]:
    """The scheme, host and root path paths are requested on, and where they came from.

    Without --base-url, the same URL Flask's test client and url_for use
    outside a request: SERVER_NAME (else localhost), PREFERRED_URL_SCHEME
    and APPLICATION_ROOT. The second value is None for that localhost default.
    """
    if given:
        parts = urlsplit(given)
        if not parts.scheme or not parts.netloc or parts.query or parts.fragment:
            raise click.BadParameter(
                f"{given!r} is not scheme://host[/root], e.g. https://example.com",
                param_hint="'--base-url'",
            )
        return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}", "--base-url"
    config = app.config
    scheme = config.get("PREFERRED_URL_SCHEME") or "http"
    root = str(config.get("APPLICATION_ROOT") or "/").rstrip("/")
    server_name = config.get("SERVER_NAME")
    if server_name:
        return f"{scheme}://{server_name}{root}", "SERVER_NAME"
    return f"{scheme}://localhost{root}", None


def _absolute(url: str) -> bool:
    return "://" in url


def _warned_default(base: str) -> None:
    click.echo(
        f"note: SERVER_NAME is not set, so pages are stored for {base}, a host "
        "visitors do not use: their requests will miss. Set SERVER_NAME (and "
        "PREFERRED_URL_SCHEME, APPLICATION_ROOT) in the app's config, or pass "
        "--base-url https://your.host, or give full URLs.",
        err=True,
    )


_BASE_URL_HELP = (
    "Scheme, host and root path for paths, e.g. https://example.com: the host is part "
    "of a page's key, so use the one visitors use. Default: SERVER_NAME with "
    "PREFERRED_URL_SCHEME and APPLICATION_ROOT, else http://localhost."
)


def _read_urls(urls: Iterable[str], source: IO[str] | None) -> list[str]:
    found = [url for url in urls if url.strip()]
    if source is not None:
        for line in source:
            text = line.strip()
            if text and not text.startswith("#"):
                found.append(text)
    return found


@cache_cli.command("warm")
@click.argument("urls", nargs=-1)
@click.option(
    "--from",
    "source",
    type=click.File("r"),
    metavar="FILE",
    help="Also read URLs from FILE ('-': standard input), one a line; blank lines "
    "and lines starting with # are skipped.",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Requests made at once, each in a thread of its own.",
)
@click.option("--base-url", help=_BASE_URL_HELP)
def warm_command(
    urls: tuple[str, ...], source: IO[str] | None, jobs: int, base_url: str | None
) -> None:
    """Fill the cache by requesting each of URLS (paths or full URLs) through the app.

    Paths are requested on the base URL (see --base-url), which is printed
    first. One line per URL says what happened, in the order they finish;
    progress goes to stderr. Exits with 1 if the store cannot be reached, or
    if any URL answered with an error or was not stored.
    """
    _, state = _selected()
    store = state.store
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    wanted = _read_urls(urls, source)
    if not wanted:
        raise click.UsageError("no URL to warm: give URLs as arguments or with --from FILE")
    base, origin = _base_url(app, base_url)
    if not store.shared:
        click.echo(
            f"note: the {store.name} store lives in one process: what this command stores "
            "is gone when it exits.",
            err=True,
        )
    _on_store(store, "warm the cache", lambda: _round_trip(store))
    if not all(_absolute(url) for url in wanted):
        click.echo(f"warming as {base}" + (f" (from {origin})" if origin else ""))
        if origin is None:
            _warned_default(base)
    clients = threading.local()
    recorder = _Recorder(app)

    def warm(url: str) -> tuple[bool, str]:
        client = getattr(clients, "client", None)
        if client is None:
            client = clients.client = app.test_client()
        counted = recorder.start()
        try:
            response = client.get(url) if _absolute(url) else client.get(url, base_url=base)
        except Exception as exc:
            return False, f"---  failed: {type(exc).__name__}: {exc}  {url}"
        status = response.status_code
        response.close()
        ok, what = _outcome(counted)
        if status >= 400:
            ok, what = False, "error status"
        return ok, f"{status}  {what}  {url}"

    progress = _Progress(len(wanted))
    warmed = 0
    with recorder:
        try:
            for ok, line in _run_all(warm, wanted, jobs):
                warmed += ok
                progress.report(ok, line)
        finally:
            progress.close()
    failed = len(wanted) - warmed
    click.echo(
        f"warmed {warmed} of {len(wanted)} URL(s)" + (f", {failed} failed" if failed else "")
    )
    if failed:
        raise click.exceptions.Exit(EXIT_FAILED)


def _run_all(
    work: Callable[[str], tuple[bool, str]], urls: list[str], jobs: int
) -> Iterator[tuple[bool, str]]:
    """Each URL's outcome: in order with one job, as they finish with several."""
    if jobs == 1:
        for url in urls:
            yield work(url)
        return
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="flask-cache-warm") as pool:
        futures = [pool.submit(work, url) for url in urls]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _cached_view(view: Any) -> CachedView | None:
    """The page cache of a view function, or of a class-based view's GET handler."""
    found = getattr(view, "__stash_cached__", None)
    view_class = getattr(view, "view_class", None)
    if found is None and view_class is not None:
        handler = getattr(view_class, "get", None) or getattr(view_class, "dispatch_request", None)
        found = getattr(handler, "__stash_cached__", None)
    return found if isinstance(found, CachedView) else None


@cache_cli.command("key")
@click.argument("url")
@click.option("--base-url", help=_BASE_URL_HELP)
def key_command(url: str, base_url: str | None) -> None:
    """Print the key a GET of URL (a path or a full URL) is cached under.

    Routed by the app and keyed by the view's own key function, on the same
    base URL as 'warm'; read the entry with 'flask cache get KEY'. Exits
    with 1 if no cached view answers URL.
    """
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    base, origin = _base_url(app, base_url)
    if not _absolute(url) and origin is None:
        _warned_default(base)
    context = (
        app.test_request_context(url)
        if _absolute(url)
        else app.test_request_context(url, base_url=base)
    )
    with context:
        req = context.request
        if req.url_rule is None or req.routing_exception is not None:
            raise Failed(f"no view answers GET {req.url}: {req.routing_exception}")
        endpoint = req.url_rule.endpoint
        view = _cached_view(app.view_functions.get(endpoint))
        if view is None:
            raise Failed(
                f"GET {req.url} is answered by view {endpoint!r}, which is not cached "
                "(cache_pages wraps a view only at its first request, in the server)"
            )
        key = view.key(req, (), dict(req.view_args or {}), None, view.cache.state(app))
        numbers = [number for number, (cache, _) in enumerate(_caches(), 1) if cache is view.cache]
    click.echo(key)
    selected: int = click.get_current_context().meta.get(_SELECTED, 1)
    if numbers and numbers[0] != selected:
        click.echo(
            f"note: view {endpoint!r} uses cache {numbers[0]} (--cache {numbers[0]})", err=True
        )
