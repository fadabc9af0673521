"""Logging for every command: key=value lines by default, JSON lines with `--log-format json`.

Our own lines (loggers `eventscale.*`) already carry `key=value` pairs naming the ScaledObject,
trigger or server; the text format puts `time`, `level` and `logger` in front of them, the JSON
format puts each of those and the message in a field of one object per line.

Libraries are quiet unless `--log-level DEBUG`: their failures are the ones our own lines
report once per poll, masked and naming what is affected, so their copies (pika's 16 lines and a
traceback per failed connection, the Azure SDK's and httpx's line per HTTP request, uvicorn's
start-up lines, one per listener) are noise. At levels above DEBUG a library line that still
gets through (a warning) loses its traceback and names the exception type instead.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Literal

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("text", "json")
LogFormat = Literal["text", "json"]
OUR_LOGGERS = "eventscale"

# the least a library logs at above DEBUG
QUIET_LIBRARIES = {
    "pika": logging.CRITICAL,  # each failed connection attempt at ERROR, with a traceback
    "azure": logging.WARNING,  # azure.core's http_logging_policy: every request and response at INFO
    "httpx": logging.WARNING,  # one line per request (kube-apiserver calls, Prometheus queries)
    "httpcore": logging.WARNING,
    "uvicorn": logging.WARNING,  # "Started server process" once per listener
    "aiokafka": logging.WARNING,
    "botocore": logging.WARNING,
    "aiobotocore": logging.WARNING,
    "kubernetes": logging.WARNING,
    "urllib3": logging.WARNING,
    "nats": logging.WARNING,
    "asyncio": logging.WARNING,
}


class _LibraryTracebacks(logging.Filter):
    """Above DEBUG, a library's record keeps its message and names its exception, without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == OUR_LOGGERS or record.name.startswith(OUR_LOGGERS + "."):
            return True
        if record.exc_info and record.exc_info[0] is not None:
            record.msg = f"{record.getMessage()} exception={record.exc_info[0].__name__}"
            record.args = None
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def _time(record: logging.LogRecord) -> str:
    return dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """`time=... level=info logger=eventscale.store <message>`; a traceback follows on its own lines."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"time={_time(record)} level={record.levelname.lower()} logger={record.name} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, msg, and the traceback (DEBUG) as `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {"time": _time(record), "level": record.levelname.lower(), "logger": record.name,
                  "msg": record.getMessage()}
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return json.dumps(fields, ensure_ascii=False)


def configure(level: str = "INFO", log_format: LogFormat = "text") -> None:
    """Set up the root logger once for a command: one handler on stderr, libraries quiet above DEBUG."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    debug = logging.getLevelName(level) <= logging.DEBUG
    for name, least in QUIET_LIBRARIES.items():
        logging.getLogger(name).setLevel(logging.NOTSET if debug else max(least, logging.getLevelName(level)))
    if not debug:
        handler.addFilter(_LibraryTracebacks())
