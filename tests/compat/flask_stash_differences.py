"""A pytest plugin for Flask-Caching's own test suite, run against Flask-Stash.

Each test listed here fails because Flask-Stash differs on purpose, or
because it reads Flask-Caching's private internals; it is marked as an
expected failure with the reason, strictly, so a test that starts passing
is reported. Every reason is explained in ``docs/migration.rst``.
"""

from __future__ import annotations

import pytest

PRIVATE = "reads Flask-Caching's private memoize version keys or helpers"
REPEATED = "the order of a repeated query parameter's values is in the key (getlist() sees it)"
BY_STATE = "objects without __repr__ or __caching_id__ are keyed by their attributes, not address"
CALL_ORDER = "asserts Flask-Caching's own sequence of store calls (has, version keys)"

#: The 8 files that test Flask-Caching's public API.
PUBLIC_API = (
    "test_cache.py",
    "test_view.py",
    "test_memoize.py",
    "test_basic_app.py",
    "test_init.py",
    "test_subclassing.py",
    "test_templates.py",
    "test_signals.py",
)

DIFFERENCES = {
    "test_view.py::test_generate_cache_key_from_query_string_repeated_paramaters": REPEATED,
    "test_view.py::test_delete_cached_query_string_repeated_parameters": REPEATED,
    "test_memoize.py::test_memoize_version_key_outlives_newest_entry": PRIVATE,
    "test_memoize.py::test_memoize_version_key_expires_once_its_entries_have": PRIVATE,
    "test_memoize.py::test_memoize_verhash_delete": PRIVATE,
    "test_memoize.py::test_memoize_annotated_delete": PRIVATE,
    "test_memoize.py::test_memoize_kwargs_to_args": PRIVATE,
    "test_memoize.py::test_memoize_arg_kwarg_var_keyword": (
        "a call Python itself rejects (an argument given twice) raises TypeError, cached or not"
    ),
    "test_memoize.py::test_memoize_classarg": BY_STATE,
    "test_memoize.py::test_memoize_classfunc_delete_with_args": BY_STATE,
    "test_memoize.py::test_memoize_classfunc_delete_with_explicit_instance": BY_STATE,
    "test_subclassing.py::test_cached_cache_none_uses_public_has": CALL_ORDER,
    "test_subclassing.py::test_memoize_uses_public_methods": CALL_ORDER,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        node = item.nodeid.removeprefix("tests/")
        reason = DIFFERENCES.get(node.split("[")[0])
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
