"""`chatstack serve` in a real browser: start the server on a free local port with a tiny chat
model, open it in headless Chromium (Debian's package, driven by Playwright; installed by
scripts/install_browser.sh), send a message, read the streamed reply from the page, and keep
a screenshot in test-artifacts/."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHATSTACK_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"

if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM}: run scripts/install_browser.sh (apt-get install chromium)",
                allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (pip install -e '.[serve]')")
pytest.importorskip("gradio", reason="chatstack serve needs gradio (pip install -e '.[serve]')")

from helpers_chat_model import parrot_model  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model = tmp_path_factory.mktemp("browser") / "outputs" / "demo" / "sft"
    shutil.copytree(parrot_model(), model)
    port = free_port()
    log = open(tmp_path_factory.mktemp("log") / "serve.log", "w+")
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "chatstack.cli", "serve", "--outputs", str(model.parents[1]),
                             "--port", str(port), "--temperature", "0", "--max_new_tokens", "32"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    log.seek(0)
                    pytest.fail(f"chatstack serve did not come up on {url}:\n{log.read()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_send_a_message_and_read_the_streamed_reply(server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(server, wait_until="domcontentloaded")
            box = page.locator("textarea[data-testid='textbox']").first
            box.wait_for(timeout=60_000)
            assert "demo/sft" in page.content()  # the model picker lists the recipe's chat model
            # record every text the reply bubble shows while it streams
            page.evaluate("""() => {
                window.__seen = [];
                new MutationObserver(() => {
                    const bots = document.querySelectorAll("[data-testid='bot']");
                    if (!bots.length) return;
                    const t = bots[bots.length - 1].innerText;
                    if (window.__seen[window.__seen.length - 1] !== t) window.__seen.push(t);
                }).observe(document.body, {subtree: true, childList: true, characterData: true});
            }""")
            box.fill("hello, who is in the kitchen?")
            box.press("Enter")
            bot = page.locator("[data-testid='bot']").last
            page.wait_for_function("() => { const b = document.querySelectorAll(\"[data-testid='bot']\");"
                                   " return b.length && b[b.length - 1].innerText.includes('oven.'); }", timeout=60_000)
            reply = bot.inner_text().strip()
            page.screenshot(path=str(ARTIFACTS / "serve_browser.png"), full_page=True)
            seen = page.evaluate("() => window.__seen")
        finally:
            browser.close()
    assert "cookie in the oven." in reply, reply
    states = [s.strip() for s in seen if s.strip()]
    assert len(states) >= 2 and all(reply.startswith(s) for s in states), states  # it grew in place: streamed
    assert (ARTIFACTS / "serve_browser.png").stat().st_size > 10_000
    (ARTIFACTS / "serve_browser.txt").write_text(f"reply: {reply}\nstates seen while streaming: {seen}\n")
