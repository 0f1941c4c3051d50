"""The demo driven in a real browser: start ``rellm-demo``, open it in headless Chromium, take turns.

Used by the browser test (``test/demo/test_demo_browser.py``) and by ``tools/demo_screenshot.py``. The browser is
the distribution's Chromium with its chromedriver (Debian: ``chromium``, ``chromium-driver``;
``tools/install_chromium.sh``), driven by selenium (the test extra); nothing is downloaded.
"""
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

# a fresh profile, no GPU, and nothing that reaches out to the network on its own
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage")
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


class BrowserMissing(RuntimeError):
    """No usable headless browser; the message says what to install."""


def find_chromium():
    """``(browser, chromedriver)`` paths; raises :class:`BrowserMissing` naming what to install."""
    try:
        import selenium  # noqa: F401
    except ImportError as err:
        raise BrowserMissing("selenium is not installed: pip install 'rellm[test]' (make install includes it)") from err
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver)) if p is None)
        raise BrowserMissing(f"{missing} not found: install the Debian packages chromium and chromium-driver "
                             "(tools/install_chromium.sh)")
    return browser, driver


@contextlib.contextmanager
def headless_chromium(width=1280, height=1400, microphone=None):
    """A selenium WebDriver on a headless Chromium with an empty profile, quit on exit.

    ``microphone``: a wav file that Chromium's fake capture device plays (in a loop) as the microphone, with
    the permission prompt answered yes; None: no microphone.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = find_chromium()
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium must not try to download a driver
    with tempfile.TemporaryDirectory(prefix="rellm-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]
        if microphone is not None:
            flags += ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                      f"--use-file-for-fake-audio-capture={Path(microphone).resolve()}"]
        for flag in flags:
            options.add_argument(flag)
        web = webdriver.Chrome(service=Service(driver), options=options)
        try:
            yield web
        finally:
            web.quit()


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def demo_command():
    """``rellm-demo`` beside this Python (the console script), else ``python -m rellm.demo``."""
    script = Path(sys.executable).parent / "rellm-demo"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "rellm.demo"]


@contextlib.contextmanager
def running_demo(args, log_path, port=None, cwd=None, timeout=300, env=None):
    """Start ``rellm-demo ARGS --port PORT`` and yield its URL once the page answers; stop it on exit.

    Its output goes to ``log_path``; a demo that exits or does not answer in ``timeout`` seconds raises
    RuntimeError with the end of that log.
    """
    port = port or free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen([*demo_command(), *map(str, args), "--port", str(port)], stdout=log,
                                stderr=subprocess.STDOUT, cwd=cwd, env=env)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"rellm-demo exited with code {proc.returncode}:\n{_tail(log_path)}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"rellm-demo did not answer on {url} within {timeout} s:\n{_tail(log_path)}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tail(path, lines=30):
    return "\n".join(Path(path).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


class DemoPage:
    """The demo page in a WebDriver, read and operated through its ``demo-*`` element ids."""

    def __init__(self, web, url, timeout=180):
        from selenium.webdriver.support.ui import WebDriverWait

        self.web, self.timeout = web, timeout
        self.wait = WebDriverWait(web, timeout)
        web.get(url)
        self.wait.until(lambda w: w.find_elements("id", "demo-send"))

    def _css(self, selector):
        return self.web.find_element("css selector", selector)

    def upload(self, wav):
        """Put an audio file into the "Your turn" input (its upload source) and wait until the page holds it."""
        self._css("#demo-audio button[aria-label='Upload file']").click()
        self.wait.until(lambda w: w.find_elements("css selector", "#demo-audio input[type=file]"))
        self._css("#demo-audio input[type=file]").send_keys(str(Path(wav).resolve()))
        # the player replaces the drop zone once the file is uploaded
        self.wait.until(lambda w: w.find_elements("css selector", "#demo-audio audio, #demo-audio .waveform-container"))

    def record(self, seconds):
        """Record ``seconds`` from the microphone into the "Your turn" input and wait until the page holds it."""
        self._css("#demo-audio button[aria-label='Record audio']").click()
        self.wait.until(lambda w: w.find_elements("css selector", "#demo-audio button.record-button"))
        self._css("#demo-audio button.record-button").click()
        self.wait.until(lambda w: self._css("#demo-audio button.stop-button").is_displayed())
        time.sleep(seconds)
        self._css("#demo-audio button.stop-button").click()
        self.wait.until(lambda w: w.find_elements("css selector", "#demo-audio audio, #demo-audio .waveform-container"))

    def send(self):
        """Press Send and wait until the answer is on the page; an error the page shows is raised as RuntimeError."""
        before, seen_busy = self.status(), []
        self._css("#demo-send").click()

        def answered(_):
            errors = self.errors()
            if errors:
                raise RuntimeError(f"the page shows an error: {errors[-1]}")
            seen_busy.append(self._busy())
            return (any(seen_busy) or self.status() != before) and not seen_busy[-1]

        self.wait.until(answered)

    def dismiss_errors(self):
        for button in self.web.find_elements("css selector", ".toast-body.error .toast-close"):
            button.click()
        self.wait.until(lambda w: not self.errors())

    # The readers below take one JavaScript snapshot each: Gradio re-renders components while an event updates
    # them, so element handles held across calls go stale.
    def _js(self, script):
        return self.web.execute_script(script)

    def errors(self):
        """The texts of the error messages (toasts) on the page."""
        texts = self._js("return [...document.querySelectorAll('.toast-body.error')].map(e => e.innerText)")
        return [" ".join(t.replace("\u00d7", " ").split()) for t in texts]

    def new_conversation(self):
        self._css("#demo-new").click()
        self.wait.until(lambda w: not self.chat() and not self._busy())

    def _busy(self):
        # while an event runs, Gradio shows the status trackers of its outputs ("processing | 1.2s"); idle ones
        # are hidden
        return self._js("return [...document.querySelectorAll(\"[data-testid='status-tracker']\")]"
                        ".some(e => !e.classList.contains('hide'))")

    def status(self):
        return (self._js("return document.querySelector('#demo-status')?.innerText ?? ''") or "").strip()

    def textbox(self, elem_id):
        return self._js(f"return document.querySelector('#{elem_id} textarea')?.value ?? null")

    def reply(self, system=None):
        return self.textbox("demo-reply" if system is None else f"demo-reply-{system}")

    def emotion(self):
        """``(shown label, {class: percent})`` from the probability bars."""
        heading, rows = self._js(
            "const p = document.querySelector('#demo-emotion');"
            "const h = p.querySelector('h2, .output-class');"
            "return [h ? h.innerText : '', [...p.querySelectorAll(\"[data-testid='label-output-value'], "
            ".confidence-set\")].map(r => r.innerText)]")
        bars = {}
        for row in rows:
            text = row.split()
            if len(text) >= 2 and text[-1].endswith("%"):
                bars[" ".join(text[:-1])] = float(text[-1].rstrip("%"))
        return heading.strip(), bars

    def avd(self):
        return self._js("return document.querySelector('#demo-avd').innerText").strip()

    def chat(self):
        """The chat's messages as ``(role, text)``, oldest first."""
        rows = self._js("return [...document.querySelectorAll('#demo-chat .message-row')].map(r => "
                        "[r.classList.contains('user-row') ? 'user' : r.classList.contains('bot-row') ? 'assistant' "
                        ": '?', r.innerText])")
        return [(role, text.strip()) for role, text in rows]

    def debug(self):
        """What the models were given for the last turn (the JSON of the debug panel, opened if closed)."""
        if not self.web.find_elements("css selector", "#demo-debug textarea"):
            self._css("#demo-debug-panel button.label-wrap").click()
            self.wait.until(lambda w: w.find_elements("css selector", "#demo-debug textarea"))
        return json.loads(self.textbox("demo-debug"))
