"""``create_headers``: the request headers that point an OpenAI-style client at Wayport.

It produces exactly what portkey-ai's ``createHeaders`` produces for the same arguments
(reference/portkey.md §2.4), so either can be used with Wayport.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

HEADER_PREFIX = "x-portkey-"


def create_headers(**kwargs: Any) -> dict[str, str]:
    """Headers for ``default_headers=`` of an OpenAI, LlamaIndex or LangChain client.

    Each keyword becomes ``x-portkey-<name>`` with ``_`` turned into ``-``: booleans as
    ``"true"``/``"false"``, mappings as JSON, other values as text; empty values are left out.
    ``authorization`` is sent as ``Authorization: Bearer <value>``; names listed in
    ``forward_headers`` are sent without the prefix.

    >>> create_headers(provider="openai", config={"retry": {"attempts": 2}})
    {'x-portkey-provider': 'openai', 'x-portkey-config': '{"retry": {"attempts": 2}}'}
    """
    forwarded = {name.replace("_", "-") for name in kwargs.get("forward_headers") or ()}
    headers: dict[str, str] = {}
    for key, value in kwargs.items():
        name = key.replace("_", "-")
        if isinstance(value, bool):
            value = "true" if value else "false"
        if name == "mode" and "proxy" not in value:
            value = f"proxy {value}"
        if isinstance(value, Mapping):
            value = json.dumps(value)
        if not value:
            continue
        if name.lower() == "authorization":
            text = str(value)
            headers[name] = text if text.startswith("Bearer ") else "Bearer " + text
        elif name == "forward-headers":
            headers[HEADER_PREFIX + name] = ",".join(value)
        elif name in forwarded:
            headers[name] = str(value)
        else:
            headers[HEADER_PREFIX + name] = str(value)
    return headers


#: The portkey-ai spelling.
createHeaders = create_headers
