"""Ingress formats other than OpenAI's: pure translations between a client's wire format and the
OpenAI chat shape the gateway routes. ``anthropic_messages`` serves ``POST /v1/messages``."""

from __future__ import annotations

from wayport.ingress.anthropic_messages import (
    OpenAIToMessagesStream,
    messages_to_openai,
    openai_error_to_messages,
    openai_to_messages,
)

__all__ = [
    "OpenAIToMessagesStream",
    "messages_to_openai",
    "openai_error_to_messages",
    "openai_to_messages",
]
