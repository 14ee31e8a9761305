"""The examples in the README and docs/ run as written (with the URL pointed at the test gateway)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import orjson
import pytest

from tests.conftest import GatewayServer
from tests.emulators.openai import OpenAIEmulator
from wayport.gateway.config import ConfigParser
from wayport.providers import ProviderRegistry
from wayport.security.ssrf import HostPolicy

ROOT = Path(__file__).resolve().parent.parent


def blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), flags=re.S)


def test_readme_llamaindex_example_runs(gateway: GatewayServer, openai_emulator: OpenAIEmulator) -> None:
    (code,) = blocks(ROOT / "README.md", "python")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code.replace("http://127.0.0.1:8787/v1", gateway.v1), {})
    assert out.getvalue() == "Echo: What is your name\nEcho: Paul Graham is "
    sent = openai_emulator.last.json()
    assert sent["model"] == "gpt-4o" and sent["max_tokens"] == 64
    assert openai_emulator.last.headers["Authorization"] == "Bearer sk-..."


@pytest.mark.parametrize("doc", ["gateway.md", "providers.md"])
def test_json_configs_in_docs_are_valid(doc: str) -> None:
    parser = ConfigParser(ProviderRegistry().problem, HostPolicy(["127.0.0.1"]).check_url)
    configs = [orjson.loads(b) for b in blocks(ROOT / "docs" / doc, "json") if '"provider"' in b]
    assert configs
    for config in configs:
        if "status" not in config and "error" not in config:
            parser.parse(config)
