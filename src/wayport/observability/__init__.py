"""Observability: the log record, secret scrubbing, the background log writer and pricing.

(Metrics and traces live in their own modules of this package.)
"""

from __future__ import annotations

from wayport.observability.pricing import Cost, PriceOverride, Pricer
from wayport.observability.record import BodyLogMode, LogRecord, body_for_log, scrub, scrub_record
from wayport.observability.writer import LogWriter

__all__ = [
    "BodyLogMode",
    "Cost",
    "LogRecord",
    "LogWriter",
    "PriceOverride",
    "Pricer",
    "body_for_log",
    "scrub",
    "scrub_record",
]
