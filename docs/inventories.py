"""Write Sphinx inventories for Python, Flask and Werkzeug from the installed packages.

Intersphinx links a name such as ``flask.Flask`` to another project's docs by
looking it up in that project's ``objects.inv``. The build must not need the
network, so instead of downloading those files this module writes them: it
imports each listed module, lists its public classes, functions, exceptions
and data (and the methods and attributes of its classes), and gives each the
URL it has in that project's published docs, which place every module on a
known page:

- Python: ``https://docs.python.org/3/library/<module>.html#<name>``
- Flask: ``https://flask.palletsprojects.com/en/stable/api/#<name>``
- Werkzeug: ``https://werkzeug.palletsprojects.com/en/stable/<page>/#<name>``

A class documented under its public name but defined in a submodule (Flask's
``flask.Flask`` lives in ``flask.app``) is listed under both names, with the
same URL: autodoc spells annotations with the defining module.

The files use the documented inventory format, version 2: four header lines,
then zlib-compressed lines of ``name domain:role priority uri display-name``.
``conf.py`` calls :func:`write_inventories` on every build; to write them by
hand, run ``python docs/inventories.py OUTPUT_DIRECTORY``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import tempfile
import types
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path


@dataclass(frozen=True)
class Project:
    """One project's published docs, and where each of its modules is documented."""

    name: str
    #: The key in ``intersphinx_mapping``, and the inventory's file name.
    key: str
    version: str
    base_url: str
    #: Module name -> its page, relative to ``base_url``.
    pages: dict[str, str]


_PYTHON_MODULES = (
    "collections",
    "collections.abc",
    "datetime",
    "functools",
    "hashlib",
    "hmac",
    "inspect",
    "json",
    "os",
    "pickle",
    "socket",
    "threading",
    "types",
    "typing",
    "urllib.parse",
)

_WERKZEUG_PAGES = {
    "werkzeug.datastructures": "datastructures/",
    "werkzeug.exceptions": "exceptions/",
    "werkzeug.http": "http/",
    "werkzeug.middleware.proxy_fix": "middleware/proxy_fix/",
    "werkzeug.routing": "routing/",
    "werkzeug.serving": "serving/",
    "werkzeug.test": "test/",
    "werkzeug.wrappers": "wrappers/",
}


def projects() -> list[Project]:
    """The projects the docs link to, at the versions installed here."""
    return [
        Project(
            name="Python",
            key="python",
            version=f"{sys.version_info.major}.{sys.version_info.minor}",
            base_url="https://docs.python.org/3/",
            pages={module: f"library/{module}.html" for module in _PYTHON_MODULES},
        ),
        Project(
            name="Flask",
            key="flask",
            version=version("flask"),
            base_url="https://flask.palletsprojects.com/en/stable/",
            pages={"flask": "api/"},
        ),
        Project(
            name="Werkzeug",
            key="werkzeug",
            version=version("werkzeug"),
            base_url="https://werkzeug.palletsprojects.com/en/stable/",
            pages=_WERKZEUG_PAGES,
        ),
    ]


@dataclass(frozen=True)
class Entry:
    name: str
    role: str
    uri: str


def _public_names(module: types.ModuleType) -> list[str]:
    """The module's public names: ``__all__``, and what the module defines itself.

    ``os.PathLike`` is documented but not in ``os.__all__``, so classes and
    functions defined in the module count too. A class or function imported
    from another package (``werkzeug.serving`` imports from ``http.server``)
    is not the module's.
    """
    names = set(getattr(module, "__all__", ()))
    package = module.__name__.split(".")[0]
    has_all = hasattr(module, "__all__")
    for name, value in vars(module).items():
        # ``from __future__ import annotations`` leaves a name behind.
        if name.startswith("_") or type(value).__module__ == "__future__":
            continue
        defined_in = getattr(value, "__module__", None) if _is_definition(value) else None
        if has_all:
            if defined_in == module.__name__:
                names.add(name)
        elif not isinstance(defined_in, str) or defined_in.split(".")[0] == package:
            names.add(name)
    return sorted(names)


def _is_definition(value: object) -> bool:
    return isinstance(value, type) or inspect.isroutine(value)


def _role(value: object) -> str | None:
    if isinstance(value, types.ModuleType):
        return None
    if isinstance(value, type):
        return "py:exception" if issubclass(value, BaseException) else "py:class"
    if inspect.isroutine(value):
        return "py:function"
    return "py:data"


def _member_role(value: object) -> str:
    if isinstance(value, (staticmethod, classmethod)) or inspect.isroutine(value):
        return "py:method"
    return "py:attribute"


def _defined_as(value: object, documented_module: str) -> str | None:
    """The name *value* is defined under, when it differs from the documented one.

    Only names inside the same package and outside private modules count:
    ``flask.app.Flask`` for ``flask.Flask``, never ``_thread.lock``.
    """
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        return None
    if module == documented_module or "<" in qualname:
        return None
    if module.split(".")[0] != documented_module.split(".")[0]:
        return None
    if any(part.startswith("_") for part in module.split(".")):
        return None
    return f"{module}.{qualname}"


def entries(project: Project) -> Iterator[Entry]:
    """Every object of *project*'s listed modules, with its URL relative to the docs."""
    for module_name, page in project.pages.items():
        module = importlib.import_module(module_name)
        yield Entry(module_name, "py:module", f"{page}#module-{module_name}")
        module_dict = vars(module)
        for name in _public_names(module):
            if name not in module_dict:
                continue
            value = module_dict[name]
            role = _role(value)
            if role is None:
                continue
            documented = f"{module_name}.{name}"
            uri = f"{page}#{documented}"
            aliases = [documented]
            if role != "py:data":
                defined = _defined_as(value, module_name)
                if defined is not None:
                    aliases.append(defined)
            for alias in aliases:
                yield Entry(alias, role, uri)
            if not isinstance(value, type):
                continue
            for member in dir(value):
                if member.startswith("_"):
                    continue
                try:
                    attribute = inspect.getattr_static(value, member)
                except AttributeError:
                    continue
                member_role = _member_role(attribute)
                member_uri = f"{page}#{documented}.{member}"
                for alias in aliases:
                    yield Entry(f"{alias}.{member}", member_role, member_uri)


def inventory_bytes(project: Project) -> bytes:
    """*project*'s inventory, in the Sphinx inventory format version 2."""
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project.name}\n"
        f"# Version: {project.version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    seen: set[tuple[str, str]] = set()
    lines = []
    for entry in entries(project):
        if (entry.name, entry.role) in seen:
            continue
        seen.add((entry.name, entry.role))
        # "$" at the end of a URI stands for the name, "-" for a display name
        # equal to the name: both keep the file small.
        uri = entry.uri
        if uri.endswith(f"#{entry.name}"):
            uri = uri[: -len(entry.name)] + "$"
        lines.append(f"{entry.name} {entry.role} 1 {uri} -\n")
    return header.encode() + zlib.compress("".join(sorted(lines)).encode())


def write_inventories(directory: Path) -> dict[str, tuple[str, str]]:
    """Write one ``<key>.inv`` per project into *directory*.

    Returns an ``intersphinx_mapping`` for them. Each file is replaced
    atomically, so builds running at the same time never read half a file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    mapping = {}
    for project in projects():
        target = directory / f"{project.key}.inv"
        data = inventory_bytes(project)
        if not target.is_file() or target.read_bytes() != data:
            handle, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.replace(temporary, target)
        mapping[project.key] = (project.base_url, str(target))
    return mapping


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUTPUT_DIRECTORY")
    for key, (url, path) in write_inventories(Path(sys.argv[1])).items():
        print(f"{key}: {path} -> {url}")
