"""Running the JavaScript clients of tests/node/ (npm graphql-ws, graphql-http, Apollo Client)
under Node against the test server."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

HARNESS = Path(__file__).parent / "node"


def ensure_installed() -> None:
    """`npm ci` from the committed lock file when node_modules is missing (CI does it first)."""
    if shutil.which("node") is None:
        raise AssertionError("node is not on PATH: the JavaScript client tests need Node.js 20+")
    if not (HARNESS / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HARNESS, check=True)


async def run(script: str, *args: str, timeout: float = 60) -> Any:
    """Run a script to its end; its last stdout line is JSON."""
    ensure_installed()
    process = await asyncio.create_subprocess_exec(
        "node", str(HARNESS / script), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    lines = stdout.decode().strip().splitlines()
    assert process.returncode == 0 and lines, f"node {script} failed ({process.returncode}): {stderr.decode()}"
    return json.loads(lines[-1])


class Lines:
    """A running script that prints one JSON object a line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def next(self, timeout: float = 15) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            stderr = await self.process.stderr.read() if self.process.stderr else b""
            raise AssertionError(f"node exited ({await self.process.wait()}): {stderr.decode()}")
        return json.loads(line)

    async def close(self) -> int:
        if self.process.returncode is None:
            try:
                return await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
        return await self.process.wait()


async def start(script: str, *args: str) -> Lines:
    ensure_installed()
    process = await asyncio.create_subprocess_exec(
        "node", str(HARNESS / script), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    return Lines(process)
