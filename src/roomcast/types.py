"""Deprecated alias of `roomcast.domain`, the module's old name (it read as the
standard library's `types`). Embedders' code may still import it
(`from roomcast.types import Identity`); import from `roomcast` or `roomcast.domain`
instead. Nothing inside the package imports this module."""

from .domain import *  # noqa: F403
from .domain import __all__ as __all__
