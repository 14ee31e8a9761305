"""docs/security.md runs as written: its shell commands against the store of a running gateway with
auth on, its Python blocks (in order, one namespace) against that gateway with the owner key."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import emulator_settings
from tests.emulators.openai import OpenAIEmulator
from tests.security_harness import secured

DOC = Path(__file__).resolve().parent.parent / "docs" / "security.md"
WAYPORT = str(Path(sys.executable).with_name("wayport"))


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_security_doc_runs_as_written(openai_emulator: OpenAIEmulator, tmp_path: Path) -> None:
    gateway = secured(emulator_settings(openai_emulator, tmp_path / "data"))
    try:
        env = {**os.environ, "WAYPORT_DATA_DIR": str(tmp_path / "data")}
        (commands,) = blocks("bash")
        outputs = []
        for line in commands.strip().splitlines():
            argv = shlex.split(line)
            assert argv[0] == "wayport"
            done = subprocess.run([WAYPORT, *argv[1:]], env=env, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, f"{line}: {done.stderr}"
            outputs.append(done.stdout)
        token = outputs[1].strip().splitlines()[-1]
        assert re.fullmatch(r"wp-[A-Za-z0-9_-]{43}", token)
        assert "ci-bot" in outputs[3] and "auditor" in outputs[3] and token not in outputs[3]
        # a key made by the CLI works on the running gateway within a second
        time.sleep(1.0)
        answer = httpx.post(
            gateway.server.v1 + "/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            headers={
                "x-portkey-api-key": token,
                "x-portkey-provider": "openai",
                "Authorization": "Bearer sk-x",
            },
        )
        assert answer.status_code == 200, answer.text

        namespace: dict[str, object] = {"__name__": "docs"}
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            for code in blocks("python"):
                code = code.replace("http://localhost:8787", gateway.server.url).replace(
                    "wp-OWNER-KEY", gateway.admin
                )
                exec(compile(code, "docs/security.md", "exec"), namespace)
        assert printed.getvalue().splitlines() == [
            "api-key wp-",
            "403",
            "success",
            "virtual-key",
            "False",
            "['revoke', 'create']",
        ]
    finally:
        gateway.server.stop()
