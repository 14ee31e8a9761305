"""docs/configs.md and docs/prompts.md run as written, against the catalog routers on loopback.

Each doc's Python blocks run in order in one namespace, with ``http://localhost:8787`` pointed at
the test server; a block preceded by ``<!-- not run by the catalog tests ... -->`` needs the
gateway's data plane and is left to the gateway's suite.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_catalog_harness import CatalogServer, running_server

ROOT = Path(__file__).resolve().parent.parent
SKIP_MARK = "<!-- not run by the catalog tests"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def python_blocks(path: Path) -> list[str]:
    text = path.read_text()
    found = []
    for match in re.finditer(r"(?:^|\n)([^\n]*)\n```python\n(.*?)```", text, flags=re.S):
        if not match.group(1).startswith(SKIP_MARK):
            found.append(match.group(2))
    return found


def json_blocks(path: Path) -> list[str]:
    return re.findall(r"```json\n(.*?)```", path.read_text(), flags=re.S)


def run_doc(name: str, server: CatalogServer, tmp_path: Path) -> tuple[str, dict[str, object]]:
    namespace: dict[str, object] = {"__name__": "docs"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for code in python_blocks(ROOT / "docs" / name):
            code = code.replace("http://localhost:8787", server.url).replace(
                "/tmp/wayport-docs", str(tmp_path)
            )
            exec(compile(code, f"docs/{name}", "exec"), namespace)
    return out.getvalue(), namespace


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[CatalogServer]:
    with running_server("sqlite", tmp_path / "server") as running:
        yield running


def test_every_configs_doc_block_runs_and_prints_what_it_says(server: CatalogServer, tmp_path: Path) -> None:
    assert len(python_blocks(ROOT / "docs" / "configs.md")) == 7
    output, namespace = run_doc("configs.md", server, tmp_path)
    lines = output.splitlines()
    assert re.fullmatch(r"pc-support-fallback-[0-9a-z]{6}", lines[0])
    assert re.fullmatch(UUID, lines[1])
    assert lines[2] == "[2, 1]"
    status, body = lines[3].split(" ", 1)
    (documented,) = json_blocks(ROOT / "docs" / "configs.md")
    assert status == "400" and ast.literal_eval(body) == json.loads(documented)  # printed as a dict
    shown = '{"provider":"openai","api_key":"[REDACTED]","override_params":{"model":"gpt-4o"}}'
    assert lines[4] == shown
    assert lines[5] == "{'retry': {'attempts': 3}}"
    # the credential was kept through the read-modify-write, and is what the gateway routes with
    keyed = server.state.resolver.resolve(str(namespace["keyed"].slug))
    assert keyed == {
        "provider": "openai",
        "api_key": "sk-docs-0123456789abcdef",
        "override_params": {"model": "gpt-4o-mini"},
    }
    slug = str(namespace["slug"])
    versions = server.http.get(f"/v1/configs/{slug}/versions").json()["data"]
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert json.loads(versions[0]["config"]) == json.loads(versions[2]["config"])
    assert server.http.get(f"/v1/configs/{slug}").json()["status"] == "active"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_every_prompts_doc_block_runs_and_prints_what_it_says(server: CatalogServer, tmp_path: Path) -> None:
    assert len(python_blocks(ROOT / "docs" / "prompts.md")) == 5
    output, namespace = run_doc("prompts.md", server, tmp_path)
    assert output.splitlines() == [
        "Who directed Dune 2?",
        "2 1",
        "Who directed Heat? | Who starred in Heat?",
        "Who starred in Heat?",
        "Who directed Heat?",
        "Who starred in Heat?",
        "Answer in French, briefly.",
        "Answer in French, briefly.",
        "Always answer in French.",
    ]
    messages = namespace["messages"]
    assert [(m.role.value, m.content) for m in messages] == [
        ("system", "You're a helpful assistant."),
        ("user", "Who directed Dune 2?"),
    ]
    (documented,) = json_blocks(ROOT / "docs" / "prompts.md")
    created = namespace["created"]
    slug = created.slug
    missing = server.http.post(f"/v1/prompts/{slug}@1/render", json={"variables": {}})
    assert missing.status_code == 400 and missing.json() == json.loads(documented)
