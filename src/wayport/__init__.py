"""Wayport: an open, self-hosted AI gateway and control plane, wire-compatible with Portkey.

The SDK surface mirrors portkey-ai's: ``GATEWAY_URL`` and ``create_headers`` / ``createHeaders``.
"""

from __future__ import annotations

import os

from wayport.sdk import create_headers, createHeaders

__version__ = "0.1.0"

#: The base URL clients point at (``WAYPORT_GATEWAY_URL``; default ``http://localhost:8787/v1``).
GATEWAY_URL: str = os.environ.get("WAYPORT_GATEWAY_URL", "http://localhost:8787/v1")

__all__ = ["GATEWAY_URL", "__version__", "createHeaders", "create_headers"]
