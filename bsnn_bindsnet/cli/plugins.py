"""User plugins for the ``bsnn`` command: modules that register neuron models, synapse types,
layer mappings, datasets or presets before the command runs.

Two ways in, both read by :func:`bsnn_bindsnet.cli.main.main` before the parser is built (so
that ``--reset``, ``--dataset`` and ``--preset`` offer what the plugins registered):

- ``bsnn --plugin MODULE`` (repeatable): imports ``MODULE`` (a dotted name on ``sys.path``;
  ``MODULE:FUNC`` also calls ``FUNC()``). For code that is not an installed package: a
  script beside the data, a notebook's module, a test.
- the entry-point group :data:`PLUGIN_GROUP` of installed packages, loaded on every run: an
  installed package declares ``bsnn_bindsnet.plugins = NAME = pkg.module[:func]`` and
  ``bsnn`` offers its registrations without a flag.

Registration is what importing the module does (``register_neuron(...)`` at its top level); a
``:FUNC`` is called once per process. A plugin that cannot be loaded is an error naming it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Sequence

__all__ = ["PLUGIN_GROUP", "load_plugin", "load_plugins"]

PLUGIN_GROUP = "bsnn_bindsnet.plugins"
_CALLED: set[str] = set()  # "module:func" already called in this process


def load_plugin(spec: str, *, where: str = "--plugin") -> None:
    """Import ``MODULE`` or ``MODULE:FUNC`` and call ``FUNC()`` (once per process).

    Raises:
        ValueError: the module cannot be imported, or has no ``FUNC``.
    """
    module_name, _, func = spec.partition(":")
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise ValueError(f"{where} {spec!r}: expected a module name (pkg.module) or "
                         "pkg.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"{where} {spec!r}: cannot import {module_name!r} ({err}); expected "
                         "a module on sys.path (PYTHONPATH) or an installed package") from None
    if func:
        target = getattr(module, func, None)
        if not callable(target):
            raise ValueError(f"{where} {spec!r}: module {module_name!r} has no function "
                             f"{func!r}")
        if spec not in _CALLED:
            target()
            _CALLED.add(spec)


def load_plugins(modules: Sequence[str] = ()) -> list[str]:
    """Load the installed plugins (entry-point group :data:`PLUGIN_GROUP`), then ``modules``
    (``--plugin`` values, in order); returns what was loaded, as ``MODULE[:FUNC]``."""
    loaded = []
    for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        dist = getattr(ep.dist, "name", None) or "an installed package"
        load_plugin(ep.value.replace(" ", ""), where=f"plugin {ep.name!r} of {dist}")
        loaded.append(ep.value)
    for spec in modules:
        load_plugin(spec)
        loaded.append(spec)
    return loaded
