"""A small Chrome DevTools Protocol client for the browser tests: starts headless
Chromium with a debugging port, opens one page, evaluates JavaScript in it and collects
what its console and runtime report. Uses aiohttp's websocket client (Ray brings aiohttp).

Example:
    async with Browser(tmp_path) as page:                     # doctest: +SKIP
        await page.goto("http://127.0.0.1:8090/")
        title = await page.eval("document.title")
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp


def chromium_binary() -> str | None:
    for c in [os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
              shutil.which("chromium-browser"), shutil.which("google-chrome")]:
        if c and os.path.exists(c):
            return c
    return None


class Page:
    """One page target: ``eval`` JavaScript, ``goto`` an address, ``problems`` seen."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self.problems: list[str] = []
        self.console: list[str] = []
        self.loads = 0
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            if "id" in data:
                future = self._waiting.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
                continue
            method, params = data.get("method"), data.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                text = details.get("exception", {}).get("description") or details.get("text")
                self.problems.append(f"exception: {text}")
            elif method == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description", "")))
                                for a in params.get("args", []))
                self.console.append(f"{params.get('type')}: {text}")
                if params.get("type") in ("error", "assert"):
                    self.problems.append(f"console.{params['type']}: {text}")
            elif method == "Log.entryAdded":
                entry = params.get("entry", {})
                if entry.get("level") == "error":
                    self.problems.append(f"log: {entry.get('text')} {entry.get('url', '')}")
            elif method == "Page.loadEventFired":
                self.loads += 1

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        call = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[call] = future
        await self.ws.send_json({"id": call, "method": method, "params": params})
        reply = await asyncio.wait_for(future, 60)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    async def eval(self, expression: str) -> Any:
        """The value of ``expression`` (awaited if a promise), as JSON would give it."""
        result = await self.send("Runtime.evaluate", expression=expression,
                                 returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def wait(self, expression: str, seconds: float = 30.0) -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                value = await self.eval(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {expression!r}; problems: "
                                     f"{self.problems}")
            await asyncio.sleep(0.05)

    async def screenshot(self, path: Path, width: int = 1400, height: int = 1800) -> None:
        import base64

        await self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                        deviceScaleFactor=1, mobile=False)
        shot = await self.send("Page.captureScreenshot", format="png",
                               captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))


class Browser:
    """Headless Chromium with one page, as an async context manager."""

    def __init__(self, profile: Path, binary: str | None = None, width: int = 1400,
                 height: int = 1800):
        self.profile = profile
        self.binary = binary or chromium_binary()
        self.size = (width, height)
        self.proc: subprocess.Popen | None = None
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Page:
        assert self.binary, "Chromium is needed: apt-get install -y chromium (or $CHROMIUM)"
        self.profile.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([
            self.binary, "--headless", "--no-sandbox", "--disable-gpu",
            "--enable-unsafe-swiftshader", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio",
            # Nothing but this machine can be reached: the page must work offline.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--user-data-dir={self.profile}",
            f"--window-size={self.size[0]},{self.size[1]}", "--remote-debugging-port=0",
            "--remote-allow-origins=*", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            assert self.proc.poll() is None, "chromium exited"
            assert time.monotonic() < deadline, "chromium did not open its debugging port"
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        self.session = aiohttp.ClientSession()
        deadline = time.monotonic() + 30
        while True:
            try:
                async with self.session.get(f"http://127.0.0.1:{port}/json/list") as r:
                    targets = await r.json(content_type=None)
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    break
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline, "no page target"
            await asyncio.sleep(0.1)
        ws = await self.session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
        page = Page(ws)
        for domain in ("Runtime", "Log", "Page"):
            await page.send(f"{domain}.enable")
        return page

    async def __aexit__(self, *exc: Any) -> None:
        if self.session is not None:
            await self.session.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
