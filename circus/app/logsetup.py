"""structlog set-up from `[tracing]`."""

from __future__ import annotations

import logging
import sys

import structlog

from circus.app.config import TracingConfig
from circus.services import sources

_LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO,
           "warn": logging.WARNING, "error": logging.ERROR}


def _mask_credentials(logger: object, method: str,
                      event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    """No log line shows the credentials of a URL (a repository's token, a database's
    password), whichever module logged it: every string value is masked here."""
    for key, value in event.items():
        if isinstance(value, str) and "@" in value:
            event[key] = sources.redact(value)
    return event


def setup(tracing: TracingConfig) -> None:
    level = _LEVELS[tracing.level]
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _mask_credentials,
    ]
    if tracing.show_targets:
        processors.append(structlog.stdlib.add_logger_name)
    if tracing.show_timestamps:
        processors.append(structlog.processors.TimeStamper(fmt="iso", utc=True))
    processors.append(structlog.processors.format_exc_info)
    processors.append(_mask_credentials)  # and in the tracebacks just formatted
    if tracing.format == "json":
        processors.append(structlog.processors.JSONRenderer())
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.stdlib.LoggerFactory() if tracing.show_targets
        else structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(message)s", force=True)
    # aiohttp's access log is noisy at info; our middleware logs requests that matter.
    logging.getLogger("aiohttp.access").setLevel(max(level, logging.WARNING))
