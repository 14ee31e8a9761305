"""The control plane's HTTP API: logs, feedback, analytics and the cache (FastAPI).

The gateway builds a :class:`ControlState` at start-up and mounts :func:`create_control_app` for
the paths ``/v1/logs``, ``/v1/feedback``, ``/v1/analytics`` and ``/v1/cache``.
"""

from __future__ import annotations

from wayport.control.app import create_control_app
from wayport.control.state import ControlState

__all__ = ["ControlState", "create_control_app"]
