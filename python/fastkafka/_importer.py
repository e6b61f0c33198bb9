"""Finding an app from a ``module:attribute`` string, the way uvicorn finds an ASGI app."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from ._app import FastKafka
from .exceptions import ConfigError

__all__ = ["import_app"]


def import_app(import_string: str) -> FastKafka:
    """Import ``module:attribute`` (the attribute may be dotted) from the working directory."""
    module_name, _, attribute = import_string.partition(":")
    if not module_name or not attribute:
        raise ConfigError(
            f"Import string {import_string!r} must be in the form 'module:attribute', "
            f"e.g. 'multi_cluster_example:app'"
        )
    working_directory = str(Path.cwd())
    if working_directory not in sys.path:
        sys.path.insert(0, working_directory)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        raise ConfigError(f"Could not import module {module_name!r}: {error}") from error
    app: object = module
    for part in attribute.split("."):
        try:
            app = getattr(app, part)
        except AttributeError:
            raise ConfigError(
                f"Attribute {attribute!r} not found in module {module_name!r}"
            ) from None
    if not isinstance(app, FastKafka):
        raise ConfigError(f"{import_string!r} is a {type(app).__name__}, not a FastKafka app")
    return app
