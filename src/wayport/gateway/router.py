"""The strategy walk over the routing plan (reference/portkey.md §7).

``single`` takes the first target, ``loadbalance`` one target by weight, ``fallback`` tries
targets in order, ``conditional`` picks the target named by the first matching condition. The
walk knows nothing of providers: it calls ``call_leaf`` for each leaf it chooses.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wayport.errors import BadRequest, GatewayError
from wayport.gateway.breaker import Breakers, CircuitBreakers
from wayport.gateway.config import ConditionSpec, Group, Leaf, Node
from wayport.gateway.reply import Reply

# Called with the leaf and whether a later fallback target could still answer if this one fails.
LeafCall = Callable[[Leaf, bool], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class RouteInput:
    """What conditional routing may look at."""

    metadata: Mapping[str, Any]
    params: Mapping[str, Any]
    pathname: str


class Router:
    def __init__(self, rng: random.Random | None = None, breakers: Breakers | None = None) -> None:
        self._rng = rng or random.Random()
        self.breakers = breakers or CircuitBreakers()

    async def walk(self, node: Node, call_leaf: LeafCall, route: RouteInput, spare: bool = False) -> Reply:
        """Route ``node``; ``spare`` says an enclosing fallback still has targets after this one."""
        if isinstance(node, Leaf):
            return await call_leaf(node, spare)
        mode = node.mode
        if mode == "fallback":
            return await self._fallback(node, call_leaf, route, spare)
        if mode == "loadbalance":
            targets = await self._closed_targets(node)
            return await self._tried(node, self.pick_weighted(node, targets), call_leaf, route, spare)
        if mode == "conditional":
            return await self.walk(choose_conditional(node, route), call_leaf, route, spare)
        return await self._tried(node, node.targets[0], call_leaf, route, spare)

    async def _fallback(self, node: Group, call_leaf: LeafCall, route: RouteInput, spare: bool) -> Reply:
        codes = node.on_status_codes
        targets = await self._closed_targets(node)
        last = len(targets) - 1
        for i, child in enumerate(targets):
            try:
                reply = await self._tried(node, child, call_leaf, route, spare or i < last)
            except GatewayError as exc:
                if exc.stops_fallback or i == last:
                    raise
                continue
            if reply.gateway_exception or i == last:
                return reply
            failed = reply.status in codes if codes is not None else not 200 <= reply.status < 300
            if not failed:
                return reply
            await reply.discard()
        raise AssertionError("unreachable: a fallback group has at least one target")

    async def _tried(
        self, group: Group, child: Node, call_leaf: LeafCall, route: RouteInput, spare: bool
    ) -> Reply:
        """Walk ``child`` and tell the group's circuit breaker how it went."""
        policy = group.breaker
        if policy is None:
            return await self.walk(child, call_leaf, route, spare)
        key = f"{group.breaker_scope}|{child.path}"
        try:
            reply = await self.walk(child, call_leaf, route, spare)
        except GatewayError as exc:
            await self.breakers.record(key, policy, exc.status)
            raise
        await self.breakers.record(key, policy, reply.status)
        return reply

    async def _closed_targets(self, group: Group) -> tuple[Node, ...]:
        """The targets whose breaker lets a request through; all of them when none does."""
        policy = group.breaker
        if policy is None:
            return group.targets
        scope = group.breaker_scope
        allowed = tuple(
            [t for t in group.targets if await self.breakers.allowed(f"{scope}|{t.path}", policy)]
        )
        return allowed or group.targets

    def pick_weighted(self, node: Group, targets: tuple[Node, ...] | None = None) -> Node:
        targets = node.targets if targets is None else targets
        total = sum(t.weight for t in targets)
        if total <= 0:
            raise GatewayError("Every target of the loadbalance strategy has weight 0; nothing to route to")
        point = self._rng.random() * total
        for target in targets:
            if point < target.weight:
                return target
            point -= target.weight
        return next(t for t in reversed(targets) if t.weight > 0)


def choose_conditional(node: Group, route: RouteInput) -> Node:
    by_name = {t.name: t for t in node.targets if t.name}
    for condition in node.conditions:
        if matches(condition.query, route):
            return by_name[condition.then]
    if node.default is not None:
        return by_name[node.default]
    raise BadRequest("Query router did not resolve to any valid target")


def matches(query: Mapping[str, Any], route: RouteInput) -> bool:
    for key, expected in query.items():
        if key == "$and":
            if not all(matches(q, route) for q in _queries(key, expected)):
                return False
        elif key == "$or":
            if not any(matches(q, route) for q in _queries(key, expected)):
                return False
        elif key.startswith("$"):
            raise BadRequest(f"Unsupported operator used in the query router: {key}")
        elif not _compare(_lookup(key, route), expected):
            return False
    return True


def _queries(key: str, value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(q, dict) for q in value):
        raise BadRequest(f"The {key} operator of the query router needs a list of conditions")
    return value


def _lookup(key: str, route: RouteInput) -> Any:
    root, _, rest = key.partition(".")
    if root == "metadata":
        return route.metadata.get(rest)
    if root == "params":
        return route.params.get(rest)
    if root == "url" and rest == "pathname":
        return route.pathname
    return None


def _compare(value: Any, expected: Any) -> bool:
    if not (isinstance(expected, dict) and expected and all(str(k).startswith("$") for k in expected)):
        return bool(value == expected)
    for op, operand in expected.items():
        if op == "$eq":
            ok = value == operand
        elif op == "$ne":
            ok = value != operand
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            ok = _numeric(op, value, operand)
        elif op == "$in":
            ok = isinstance(operand, list) and value in operand
        elif op == "$nin":
            ok = isinstance(operand, list) and value not in operand
        elif op == "$regex":
            ok = isinstance(value, str) and re.search(str(operand), value) is not None
        else:
            raise BadRequest(f"Unsupported operator used in the query router: {op}")
        if not ok:
            return False
    return True


def _numeric(op: str, value: Any, operand: Any) -> bool:
    try:
        left, right = float(value), float(operand)
    except (TypeError, ValueError):
        return False
    if op == "$gt":
        return left > right
    if op == "$gte":
        return left >= right
    if op == "$lt":
        return left < right
    return left <= right


__all__ = ["ConditionSpec", "RouteInput", "Router", "matches"]
