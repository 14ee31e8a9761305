"""Credentials in saved configs: kept in the store for the gateway, never shown.

What ``/v1/configs`` answers (and so what the console shows) has ``[REDACTED]`` wherever a config
node holds a credential: a provider ``api_key``, AWS keys, a service account, an Azure token or
client secret, in either spelling (``api_key``, ``apiKey``). A config written back with
``[REDACTED]`` in such a place keeps the credential the current version has there, so the console's
edit form and an SDK's read-modify-write work without ever holding the key. The node must be the
same one: same position in ``targets`` and same ``provider``; otherwise the write is refused.

In the store, each credential is sealed under the master key (``wayport.security.vault``), bound
to its config and field name: ``{"$sealed": <base64url>, "$key": <master key id>}``. Versions
written before sealing existed are read as they are, and sealed by ``wayport vkeys rotate-master``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from wayport.catalog.errors import InvalidInput
from wayport.security.vault import Vault
from wayport.security.virtual_keys import SECRET_NAMES

__all__ = ["HIDDEN", "is_sealed", "needs_sealing", "redact", "restore", "seal", "unseal"]

HIDDEN = "[REDACTED]"
_SEALED, _KEY = "$sealed", "$key"
_UPPER = re.compile(r"(?<!^)(?=[A-Z])")

Path = tuple[int, ...]  # the indexes into ``targets`` that lead to a node; () is the root


def redact(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with each node's credentials replaced by ``[REDACTED]``."""
    return _map_credentials(config, lambda _name, _value: HIDDEN)


def seal(config: dict[str, Any], vault: Vault, config_id: str) -> dict[str, Any]:
    """A copy of ``config`` with each credential encrypted for the store."""

    def sealed(name: str, value: Any) -> Any:
        blob, key_id = vault.encrypt(orjson.dumps(value), _aad(config_id, name))
        return {_SEALED: base64.urlsafe_b64encode(blob).decode("ascii"), _KEY: key_id}

    return _map_credentials(config, sealed)


def unseal(config: dict[str, Any], vault: Vault, config_id: str) -> dict[str, Any]:
    """A copy of ``config`` with each sealed credential decrypted (``VaultError`` when it cannot be)."""

    def opened(name: str, value: Any) -> Any:
        if not is_sealed(value):
            return value
        blob = base64.urlsafe_b64decode(value[_SEALED])
        return orjson.loads(vault.decrypt(blob, value[_KEY], _aad(config_id, name)))

    return _map_credentials(config, opened)


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and value.keys() == {_SEALED, _KEY}


def needs_sealing(config: dict[str, Any], key_id: str) -> bool:
    """Whether ``config`` (as stored) holds a credential in clear or sealed under another key."""
    return any(
        _is_secret(key) and value is not None and not (is_sealed(value) and value[_KEY] == key_id)
        for _, node in _nodes(config)
        for key, value in node.items()
    )


def _map_credentials(config: dict[str, Any], change: Callable[[str, Any], Any]) -> dict[str, Any]:
    """A copy of ``config`` in which ``change(name, value)`` replaces each node's credentials
    (``name`` in snake_case)."""
    copy = {
        key: change(_snake(key), value) if _is_secret(key) and value is not None else value
        for key, value in config.items()
    }
    targets = config.get("targets")
    if isinstance(targets, list):
        copy["targets"] = [
            _map_credentials(target, change) if isinstance(target, dict) else target for target in targets
        ]
    return copy


def _aad(config_id: str, name: str) -> bytes:
    return f"config:{config_id}:{name}".encode()


def restore(config: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    """``config`` with each ``[REDACTED]`` credential replaced, in place, by the one ``current``
    holds at that node; ``InvalidInput`` naming every place where there is none to keep."""
    previous = dict(_nodes(current)) if current is not None else {}
    errors = []
    for path, node in _nodes(config):
        for key, value in node.items():
            if not _is_secret(key):
                continue
            where = ",".join([part for index in path for part in ("targets", str(index))] + [key])
            if is_sealed(value):  # only the store writes these
                errors.append(
                    f"path: {where}, message: a credential cannot be a sealed value; send it in clear"
                )
                continue
            if value != HIDDEN:
                continue
            kept = _credential(previous.get(path), key, node.get("provider"))
            if kept is None:
                errors.append(
                    f"path: {where}, message: {HIDDEN} stands for the credential stored here, and there is "
                    "none (a new config, a new target or another provider): send the credential itself"
                )
            else:
                node[key] = kept
    if errors:
        raise InvalidInput("Invalid config passed. A credential cannot be kept as sent", errors)
    return config


def _nodes(config: dict[str, Any], path: Path = ()) -> Iterator[tuple[Path, dict[str, Any]]]:
    yield path, config
    targets = config.get("targets")
    if isinstance(targets, list):
        for index, target in enumerate(targets):
            if isinstance(target, dict):
                yield from _nodes(target, (*path, index))


def _credential(node: dict[str, Any] | None, key: str, provider: Any) -> Any:
    """The credential ``node`` holds under ``key``'s name (either spelling), when it is the same
    provider's node."""
    if node is None or node.get("provider") != provider:
        return None
    name = _snake(key)
    for other, value in node.items():
        if _snake(other) == name and value is not None and value != HIDDEN:
            return value
    return None


def _is_secret(key: str) -> bool:
    return _snake(key) in SECRET_NAMES


def _snake(key: str) -> str:
    return _UPPER.sub("_", key).lower()
