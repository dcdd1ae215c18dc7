"""What the two browser tests share (tests/ui: JupyterLab; tests/site: the course site): Debian's chromium driven
by Playwright, a free local port, and waiting for a local server to answer."""
from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and nothing that reaches out: this machine's network is closed, so background requests only fail.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(command: list[str], ready_url: str, what: str, seconds: float, **popen: object) -> Iterator[None]:
    """Run a local server for the enclosed block: started with ``command``, ready once ``ready_url`` answers
    (a ``RuntimeError`` naming ``what`` after ``seconds``), stopped at the end whatever happens."""
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen)
    try:
        deadline = time.monotonic() + seconds
        while True:
            try:
                urllib.request.urlopen(ready_url, timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what} did not start within {seconds:g} s") from None
                time.sleep(0.2)
        yield
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextmanager
def chromium(make_target: str) -> Iterator[Browser]:
    """Debian's chromium under Playwright; a missing browser names the make target that installs it."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make {make_target}` installs Debian's chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()
