"""The web studio in a real headless Chromium: generate, play, stems, commit, history, compare, hum-to-beat.

Debian's ``chromium`` package is driven by Playwright. The test fails (never
skips) when Chromium is missing: ``make sysdeps`` installs it. A screenshot of
the finished page is saved as tests/output/studio.png.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from tests import stack_fixtures
from tests.stack_fixtures import Stack, tone_wav

stack = stack_fixtures.stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
OUTPUT = Path(__file__).parent / "output"
TIMEOUT_MS = 90_000
expect.set_options(timeout=TIMEOUT_MS)  # generation and separation take seconds on a busy CPU


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium") or CHROMIUM
    assert Path(executable).exists(), "Chromium is not installed: run `make sysdeps` (apt-get install -y chromium)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 1600})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()


def test_studio_generate_play_commit_history(stack: Stack, page: Page, tmp_path: Path) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(f"console: {msg.text}")

    page.on("console", on_console)
    page.goto(stack.base_url + "/")
    expect(page).to_have_title("BeatFlow Studio")

    # Sign up through the form.
    page.fill("#username", "studio" + uuid.uuid4().hex[:8])
    page.fill("#password", "correct horse battery")
    page.click("#signup")
    expect(page.locator("#studio")).to_be_visible()
    expect(page.locator("#whoami")).to_contain_text("signed in as studio")

    # Generate with a live progress bar fed by Server-Sent Events.
    page.fill("#prompt", "Upbeat electronic music with a punchy kick")
    page.fill("#duration", "1.5")
    page.fill("#seed", "11")
    page.click("#generate")
    expect(page.locator("#progress-label")).to_contain_text("succeeded")
    assert page.eval_on_selector("#progress", "el => el.value") == 1
    expect(page.locator("#result")).to_be_visible()

    # Play: the audio element loads the generated WAV from the gateway and its clock advances.
    page.click("#play")
    page.wait_for_function(
        "() => { const a = document.getElementById('player'); return a.currentTime > 0.2 || a.ended; }"
    )
    duration = page.eval_on_selector("#player", "el => el.duration")
    assert abs(duration - 1.5) < 0.1
    assert page.get_attribute("#download", "download", timeout=1000) or ""

    # Separate into stems, each with its own player.
    page.click("#separate")
    expect(page.locator("#stems-label")).to_contain_text("succeeded")
    stems = page.locator("#stems audio")
    expect(stems).to_have_count(4)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#stems audio')].every(a => a.readyState >= 1 && a.duration > 1)"
    )

    # Commit the generation, then the stems, to a new repository.
    page.fill("#repo-name", "studio-song")
    page.click("#create-repo")
    expect(page.locator("#repo-select option:checked")).to_contain_text("studio-song")
    page.fill("#commit-message", "First idea")
    page.click("#commit")
    expect(page.locator("#commit-status")).to_contain_text("with 1 stem(s)")
    page.fill("#commit-message", "Split into stems")
    page.click("#commit-stems")
    expect(page.locator("#commit-status")).to_contain_text("with 5 stem(s)")

    # History as an SVG graph; pick two commits to compare them.
    nodes = page.locator("#graph circle.node")
    expect(nodes).to_have_count(2)
    expect(page.locator("#graph")).to_contain_text("Split into stems")
    expect(page.locator("#graph")).to_contain_text("[main]")
    nodes.nth(1).click()  # the older commit is the base
    nodes.nth(0).click()
    rows = page.locator("#diff tr")
    expect(rows.first).to_be_visible()
    added = page.locator("#diff tr.change-added")
    expect(added).to_have_count(4)
    expect(page.locator("#diff tr.change-unchanged")).to_contain_text("mix")

    # Hum-to-beat: upload a melody through the file picker, generate from it.
    melody = tmp_path / "hum.wav"
    melody.write_bytes(tone_wav(2.0, freq=262.0, channels=1))
    page.set_input_files("#melody-file", str(melody))
    expect(page.locator("#melody-status")).to_contain_text("melody ready: 2.0 s audio/wav")
    page.click("#hum-generate")
    expect(page.locator("#progress-label")).to_contain_text("succeeded")
    expect(page.locator("#result")).to_be_visible()

    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "studio.png"), full_page=True)
    assert errors == []
