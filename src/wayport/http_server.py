"""How uvicorn serves Wayport: the options ``wayport serve`` and the tests' servers share."""

from __future__ import annotations

from typing import Any

from wayport.settings import Settings

__all__ = ["server_options"]


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options beside where to listen and how many workers."""
    return {
        "http": "httptools",
        "log_level": settings.log_level,
        # The access log would print query strings, which may carry keys; and it costs CPU per request.
        "access_log": False,
        "server_header": False,
        "timeout_keep_alive": settings.keep_alive_s,
    }
