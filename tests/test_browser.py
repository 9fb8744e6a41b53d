"""The headless-browser harness (tests/browser.py) on a page that refreshes itself: a loopback
HTTP server in the test's own trio loop serves the page and its JSON, and a real Chromium
loads it. Real time throughout (the browser is another process), every wait bounded."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import trio
from browser import JavaScriptError, open_browser, require_chromium

from brokergate.simulators.firstock.http11 import HttpConnection, Reply, Request

#: Fetches /data every 200 ms and shows its value; what the status page will do, in small.
PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>refreshing</title><link rel="icon" href="data:,">
</head><body><p>value: <span id="value">none yet</span></p>
<script>
async function refresh() {
  const reply = await fetch("/data", {cache: "no-store"});
  document.getElementById("value").textContent = (await reply.json()).value;
}
refresh();
setInterval(refresh, 200);
</script></body></html>"""
#: A page that goes wrong in both ways page.errors collects.
BROKEN = b"""<!doctype html><html><head><link rel="icon" href="data:,"></head><body><script>
console.error("shown in red", 42);
setTimeout(() => { null.missing; }, 0);
</script></body></html>"""


class Site:
    """The pages above and /data, whose value the test changes."""

    def __init__(self) -> None:
        self.value = "first"
        self.data_requests = 0

    async def answer(self, request: Request) -> Reply:
        if request.path == "/":
            return Reply(200, PAGE, content_type="text/html; charset=utf-8")
        if request.path == "/broken":
            return Reply(200, BROKEN, content_type="text/html; charset=utf-8")
        if request.path == "/data":
            self.data_requests += 1
            return Reply(200, json.dumps({"value": self.value}).encode())
        return Reply(404, b"{}")

    async def serve(self, stream: trio.SocketStream) -> None:
        await HttpConnection(stream, self.answer, refuse).run()


def refuse(status: int, message: str) -> Reply:
    return Reply(status, message.encode(), content_type="text/plain", close=True)


async def start_site(nursery: trio.Nursery, site: Site) -> str:
    listeners = await nursery.start(
        functools.partial(trio.serve_tcp, site.serve, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_a_page_that_refreshes_itself_shows_the_new_value(chromium: str) -> None:
    site = Site()
    async with trio.open_nursery() as nursery:
        base = await start_site(nursery, site)
        async with open_browser(chromium) as browser:
            page = await browser.open(base + "/")
            assert await page.evaluate("document.title") == "refreshing"
            shown = "document.getElementById('value').textContent"
            assert await page.wait_for(f"{shown} === 'first' && {shown}") == "first"

            site.value = "second"
            asked = site.data_requests
            assert await page.wait_for(f"{shown} === 'second'", timeout=5)
            assert site.data_requests > asked  # the page asked again: it was not cached
            assert page.errors == []

            png = await page.screenshot()
            assert png.startswith(b"\x89PNG\r\n\x1a\n")
        nursery.cancel_scope.cancel()


async def test_evaluate_and_wait_for_say_what_went_wrong(chromium: str) -> None:
    site = Site()
    async with trio.open_nursery() as nursery:
        base = await start_site(nursery, site)
        async with open_browser(chromium) as browser:
            page = await browser.open(base + "/broken")
            await page.wait_for("true")  # the timer's throw has had its turn
            assert page.errors[0] == "shown in red 42"
            assert "TypeError" in page.errors[1] and "missing" in page.errors[1]
            assert len(page.errors) == 2

            assert await page.evaluate("Promise.resolve([1, {a: 2}])") == [1, {"a": 2}]
            assert await page.evaluate("undefined") is None
            with pytest.raises(JavaScriptError, match="ReferenceError: nowhere is not defined"):
                await page.evaluate("nowhere.at_all")
            with pytest.raises(AssertionError, match=r"'1 \+ 1 === 3'.*after 0.2 s.*last: False"):
                await page.wait_for("1 + 1 === 3", timeout=0.2)
            # A throwing expression is "not yet", and what the page threw before is not lost:
            # the harness's own evaluations add nothing to page.errors.
            with pytest.raises(AssertionError, match="last: JavaScriptError"):
                await page.wait_for("nowhere.at_all", timeout=0.2)
            assert len(page.errors) == 2
        nursery.cancel_scope.cancel()


def test_without_chromium_the_browser_tests_skip_or_fail_saying_how_to_get_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BROKERGATE_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("BROKERGATE_REQUIRE_CHROMIUM", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        require_chromium()
    monkeypatch.setenv("BROKERGATE_REQUIRE_CHROMIUM", "1")
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        require_chromium()
