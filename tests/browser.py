"""A real headless Chromium (Debian's package) driven over the DevTools Protocol from the test's
trio loop: ``async with open_browser() as browser``, ``page = await browser.open(url)``, ``await
page.wait_for(js)``, ``assert page.errors == []``. One WebSocket carries every page's messages
(flat sessions); one reader task hands answers to their commands by id, events to their page.
Without Chromium the test skips, saying how to get it (fails if BROKERGATE_REQUIRE_CHROMIUM=1)."""

from __future__ import annotations

import base64
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import pytest
import trio
import trio_websocket

HOW_TO_GET = ("the browser tests need Debian's chromium: `apt-get install chromium` "
              "(.ci/run installs it)")
#: Headless, and nothing that reaches out: without the last five, Chromium tries to reach
#: Google's services and logs each failure (there is no network here).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
         "--no-first-run", "--disable-quic", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps")
STARTUP_TIMEOUT = 20.0
COMMAND_TIMEOUT = 10.0
_LISTENING = re.compile(rb"DevTools listening on (ws://\S+)")


def chromium_path() -> str | None:
    """``BROKERGATE_CHROMIUM``, else chromium, chromium-browser or google-chrome on the PATH."""
    if chosen := os.environ.get("BROKERGATE_CHROMIUM"):
        return chosen
    found = (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome"))
    return next((path for path in found if path), None)


def require_chromium() -> str:
    """Chromium's path; without one, skips the test (fails it if BROKERGATE_REQUIRE_CHROMIUM=1)."""
    found = chromium_path()
    if found is None:
        if os.environ.get("BROKERGATE_REQUIRE_CHROMIUM") == "1":
            pytest.fail(HOW_TO_GET + "; BROKERGATE_REQUIRE_CHROMIUM=1 forbids skipping them")
        pytest.skip(HOW_TO_GET)
    return found


class JavaScriptError(RuntimeError):
    """An expression given to ``Page.evaluate`` threw."""


class Browser:
    """The CDP connection to one Chromium; ``open(url)`` makes a page."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self._ws = ws
        self._ids = 0
        self._answers: dict[int, dict[str, Any]] = {}
        self._pages: dict[str, Page] = {}
        self._gone: str | None = None
        self.news = trio.Event()  # set, and replaced, at each message: wait, then look again

    async def send(self, method: str, params: dict[str, Any] | None = None,
                   session: str | None = None) -> dict[str, Any]:
        """One command's result; RuntimeError for an error answer, or none in time."""
        self._ids += 1
        call_id = self._ids
        message = {"id": call_id, "method": method, "params": params or {}}
        await self._ws.send_message(json.dumps(message | {"sessionId": session}
                                               if session else message))
        with trio.move_on_after(COMMAND_TIMEOUT):
            while call_id not in self._answers and self._gone is None:
                await self.news.wait()
        reply = self._answers.pop(call_id, None) or {
            "error": self._gone or f"no answer within {COMMAND_TIMEOUT} s"}
        if "error" in reply:
            raise RuntimeError(f"{method} failed: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def open(self, url: str) -> Page:
        """A new tab, navigated to ``url`` and loaded."""
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget",
                                   {"targetId": target["targetId"], "flatten": True})
        page = self._pages[attached["sessionId"]] = Page(self, attached["sessionId"])
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        await page.goto(url)
        return page

    async def _read(self) -> None:
        try:
            while True:
                message = json.loads(await self._ws.get_message())
                if "id" in message:
                    self._answers[message["id"]] = message
                elif (page := self._pages.get(message.get("sessionId", ""))) is not None:
                    page._event(message.get("method", ""), message.get("params", {}))
                self.news.set()
                self.news = trio.Event()
        except trio_websocket.ConnectionClosed as closed:
            self._gone = f"the connection to Chromium closed ({closed.reason})"
            self.news.set()


class Page:
    """One tab. ``errors`` collects what the page threw or logged with console.error."""

    def __init__(self, browser: Browser, session: str) -> None:
        self._browser = browser
        self._session = session
        self._loads = 0
        self.errors: list[str] = []

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self._browser.send(method, params, self._session)  # to this tab

    async def goto(self, url: str, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Navigates, and waits for the new document's load event."""
        before = self._loads
        navigated = await self.send("Page.navigate", {"url": url})
        if "errorText" in navigated:
            raise AssertionError(f"Chromium could not load {url}: {navigated['errorText']}")
        with trio.move_on_after(timeout):
            while self._loads == before:
                await self._browser.news.wait()
        if self._loads == before:
            raise AssertionError(f"{url} fired no load event within {timeout} s")

    async def evaluate(self, expression: str) -> Any:
        """The expression's value (a promise's, awaited) as JSON carries it; JavaScriptError
        with the JS error's text when it throws."""
        answer = await self.send("Runtime.evaluate", {
            "expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in answer:
            raise JavaScriptError(f"{expression!r} threw {_describe(answer['exceptionDetails'])}")
        return answer["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 10.0,  # noqa: ASYNC109
                       interval: float = 0.05) -> Any:
        """Evaluates ``expression`` until it is truthy and returns that value (a throw is "not
        yet"); at the timeout, AssertionError with the last value or error."""
        last: object = None
        with trio.move_on_after(timeout):
            while True:
                try:
                    last = await self.evaluate(expression)
                except JavaScriptError as error:
                    last = error
                else:
                    if last:
                        return last
                await trio.sleep(interval)
        raise AssertionError(f"{expression!r} still not truthy after {timeout} s; last: {last!r}")

    async def screenshot(self) -> bytes:
        """The viewport as a PNG."""
        shot = await self.send("Page.captureScreenshot", {"format": "png"})
        return base64.b64decode(shot["data"])

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Page.loadEventFired":
            self._loads += 1
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            self.errors.append(" ".join(str(arg.get("value", arg.get("description", "")))
                                        for arg in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            self.errors.append(_describe(params["exceptionDetails"]))


def _describe(details: dict[str, Any]) -> str:
    thrown = details.get("exception", {})
    return str(thrown.get("description") or thrown.get("value") or details.get("text"))


@asynccontextmanager
async def open_browser(binary: str | None = None) -> AsyncIterator[Browser]:
    """A headless Chromium (``binary``, else ``require_chromium()``'s) with a fresh profile,
    connected; on the way out, however it goes, its process group is killed and the profile
    removed. (Tests pass the ``chromium`` fixture's path: a skip raised in trio's loop reaches
    pytest without its message.)"""
    binary = binary or require_chromium()
    profile = tempfile.mkdtemp(prefix="brokergate-chromium-")
    try:
        process = await trio.lowlevel.open_process(
            [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            # Else its crash reporter keeps a database in ~/.config/chromium.
            env=os.environ | {"XDG_CONFIG_HOME": profile}, start_new_session=True)
        try:
            async with trio.open_nursery() as nursery:
                assert process.stderr is not None
                stderr = _Stderr()
                nursery.start_soon(stderr.drain, process.stderr)
                with trio.move_on_after(STARTUP_TIMEOUT):
                    await stderr.listening.wait()
                if stderr.url is None:
                    raise RuntimeError(
                        f"Chromium ({binary}) did not say where DevTools listens (it exited, "
                        f"or took over {STARTUP_TIMEOUT} s); its stderr ends:\n"
                        + "\n".join(stderr.tail))
                async with trio_websocket.open_websocket_url(
                        stderr.url, max_message_size=64 << 20, disconnect_timeout=2) as ws:
                    browser = Browser(ws)
                    nursery.start_soon(browser._read)
                    yield browser
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:  # a lone error leaves as itself: the test's own
            raise group.exceptions[0] if len(group.exceptions) == 1 else group from None
        finally:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with trio.CancelScope(shield=True):
                await process.wait()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class _Stderr:
    """Chromium's stderr read to its end (a full pipe stalls it): its DevTools URL, last lines."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.listening = trio.Event()
        self.tail: collections.deque[str] = collections.deque(maxlen=30)

    async def drain(self, stream: trio.abc.ReceiveStream) -> None:
        pending = b""
        while chunk := await stream.receive_some():
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                self.tail.append(line.decode(errors="replace"))
                if self.url is None and (found := _LISTENING.search(line)):
                    self.url = found.group(1).decode()
                    self.listening.set()
        self.listening.set()  # gone without saying: no point waiting on
