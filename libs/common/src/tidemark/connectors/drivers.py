"""Database drivers are optional: each connector's driver comes with an extra of
``tidemark-common``, so a service installs only the drivers of the sources it reads.

A connector package calls :func:`require` before it imports its driver; without the driver
the connector cannot be loaded and the error says which extra installs it.
"""

from __future__ import annotations

import importlib

from tidemark.errors import ConfigError


class MissingDriverError(ConfigError):
    """A connector's database driver is not installed."""


def require(extra: str, *modules: str) -> None:
    """Import ``modules`` or raise :class:`MissingDriverError` naming ``extra``."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise MissingDriverError(
                f"the {extra} connector needs the Python package {name!r}, which is not installed; "
                f"install it with: pip install 'tidemark-common[{extra}]'",
                field="type", extra=extra, module=name,
            ) from exc
