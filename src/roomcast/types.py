"""Deprecated alias of `roomcast.domain` (the module's old name, which read as the
standard library's `types`). Import from `roomcast.domain`, or the public names
from `roomcast`; this alias goes once nothing in the package imports it."""

from .domain import *  # noqa: F403
from .domain import __all__ as __all__
