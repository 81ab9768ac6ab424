"""Logging: one JSON object per line (or console text for people), whoever logs.

roomcast logs through structlog; uvicorn, python-engineio, python-socketio and the
rest log through the standard library. Both end in one handler on the root logger
whose `structlog.stdlib.ProcessorFormatter` gives every line the same fields
(`timestamp`, `level`, `logger`, `event`, and whatever is bound with
`structlog.contextvars`, such as `instance`), so no library's own format shows.
"""

from __future__ import annotations

import logging
import sys

import structlog

#: Standard-library loggers of the server stack, brought under the root handler.
#: python-engineio and python-socketio add a plain StreamHandler of their own to a
#: logger whose level is unset, so each gets a level here before any server exists.
LIBRARY_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "uvicorn.asgi",
    "engineio.server",
    "socketio.server",
)


def configure_logging(log_format: str, level: str) -> None:
    """Route structlog and the standard library through one formatter on stderr.

    Called once per process, before the application is built (the CLI does it;
    under your own uvicorn, call it yourself and pass uvicorn `log_config=None`
    or `--log-config` of your own, or uvicorn's dictConfig replaces it).
    """
    numeric = getattr(logging, level.upper(), logging.INFO)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        # Below the level, a call returns at once, before any processor runs.
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    # Other libraries (redis, asyncio, ...) speak only from warnings up.
    root.setLevel(max(numeric, logging.WARNING))
    logging.getLogger("roomcast").setLevel(numeric)
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
        # engineio's and socketio's info lines are per packet; uvicorn's are not.
        floor = numeric if name.startswith("uvicorn") else max(numeric, logging.WARNING)
        library.setLevel(floor)


def get_logger(**bound: object) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger("roomcast").bind(**bound)
    return logger
