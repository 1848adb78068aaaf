"""The web studio in a real headless Chromium, walking a producer's session.

sign up → generate with progress → waveform → separate → mixer (mute, solo, play, seek, space bar)
→ commit → branch from that commit → new drums on the branch → compare A/B → merge with a conflict
resolved per stem → fork → revert → blame; then the studio at 390 px wide.

Each step checks the page and the API's state. Debian's ``chromium`` package is driven by
Playwright; the test fails (never skips) when Chromium is missing: ``make sysdeps`` installs it.
Screenshots of each screen go to tests/output/.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from tests.stack_fixtures import Stack, tone_wav

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


def _open(browser: Browser, width: int, height: int) -> tuple[Page, list[str]]:
    context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))

    def on_console(msg: ConsoleMessage) -> None:
        # A refused request logs a console error by design (e.g. the 409 of a conflicting merge).
        if msg.type == "error" and "Failed to load resource" not in msg.text:
            errors.append(f"console: {msg.text}")

    page.on("console", on_console)
    return page, errors


def _shot(page: Page, name: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / name), full_page=True)


def _sign_up(page: Page, stack: Stack, prefix: str) -> httpx.Client:
    page.goto(stack.base_url + "/")
    expect(page).to_have_title("BeatFlow Studio")
    page.fill("#username", prefix + uuid.uuid4().hex[:8])
    page.fill("#password", "correct horse battery")
    page.click("#signup")
    expect(page.locator("#studio")).to_be_visible()
    token = page.evaluate("localStorage.getItem('bf_token')")
    return stack.client(token)


def _generate(page: Page, http: httpx.Client) -> dict[str, Any]:
    page.fill("#prompt", "Upbeat electronic music with a punchy kick")
    page.fill("#duration", "1.5")
    page.fill("#seed", "11")
    page.click("#generate")
    expect(page.locator("#progress-label")).to_contain_text("succeeded")
    expect(page.locator("#takes .wave-slot.drawn")).to_have_count(1)
    take = page.evaluate("window.studio.state.take")
    status = http.get(f"/api/ai/status/{take['task_id']}").json()
    assert status["status"] == "success" and status["state"] == "succeeded"
    return dict(take)


def _mixer_gains(page: Page) -> dict[str, float]:
    return dict(
        page.evaluate("Object.fromEntries(window.studio.mixer.tracks.map(t => [t.name, t.gainNode.gain.value]))")
    )


def _head(http: httpx.Client, repo: str, branch: str) -> dict[str, Any]:
    r = http.get(f"/api/vcs/checkout/{repo}", params={"ref": branch})
    assert r.status_code == 200, r.text
    return dict(r.json())


def _stem_blobs(commit: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["blob_key"] for s in commit["stems"]}


def test_producer_session(stack: Stack, browser: Browser, tmp_path: Path) -> None:
    page, errors = _open(browser, 1280, 900)
    http = _sign_up(page, stack, "producer")
    expect(page.locator("#whoami")).to_contain_text("signed in as producer")
    # The generator runs the random-weight test preset: the page says so, and how to fix it.
    expect(page.locator("#demo-banner")).to_be_visible()
    expect(page.locator("#demo-banner")).to_contain_text("random weights")

    # Generate: live progress, then a waveform drawn from the gateway's peaks.
    take = _generate(page, http)
    assert page.locator("#takes .wave-slot canvas").count() > 0  # wavesurfer's canvas (in its shadow root)
    download = page.locator("#takes a", has_text="Download")
    assert download.get_attribute("download", timeout=1000).startswith("upbeat-electronic-music")
    _shot(page, "studio-1-generate.png")

    # Separate: the mixer gets every stem, each with a waveform.
    page.click("#takes button:has-text('Separate stems')")
    rows = page.locator("#mixer .stem-row")
    expect(rows).to_have_count(4)
    expect(page.locator("#mixer .wave-slot.drawn")).to_have_count(4)
    names = rows.evaluate_all("rows => rows.map(r => r.dataset.stem)")
    assert set(names) == {"drums", "bass", "other", "vocals"}

    # Mixer: mute the drums, solo the bass: only the bass is heard.
    page.click(".stem-row[data-stem=drums] button.mute")
    expect(page.locator(".stem-row[data-stem=drums] button.mute")).to_have_attribute("aria-pressed", "true")
    assert _mixer_gains(page)["drums"] == 0 and _mixer_gains(page)["vocals"] == 1
    page.click(".stem-row[data-stem=bass] button.solo")
    gains = _mixer_gains(page)
    assert gains["bass"] == 1 and gains["drums"] == gains["vocals"] == gains["other"] == 0
    # Play all stems in sync; the shared clock advances.
    page.click("#mix-play")
    page.wait_for_function("() => window.studio.mixer.playing && window.studio.mixer.position() > 0.2")
    # Seek by clicking the middle of a waveform.
    wave = page.locator(".stem-row[data-stem=bass] .wave-slot")
    box = wave.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    page.wait_for_function("() => Math.abs(window.studio.mixer.position() - 0.75) < 0.35")
    # The space bar pauses (focus away from any control first).
    page.click("#mixer-source")
    page.keyboard.press("Space")
    page.wait_for_function("() => !window.studio.mixer.playing")
    expect(page.locator("#mix-play")).to_have_text("▶ Play")
    # Download the mix as heard (only the soloed bass), rendered in the page as WAV.
    with page.expect_download() as download_info:
        page.click("#mix-download")
    mix = download_info.value
    assert mix.suggested_filename == "mix-bass-take.wav"
    mix_bytes = Path(mix.path()).read_bytes()
    assert mix_bytes[:4] == b"RIFF" and mix_bytes[8:12] == b"WAVE" and len(mix_bytes) > 44
    _shot(page, "studio-2-mixer.png")
    page.locator("#mixer-panel").screenshot(path=str(OUTPUT / "studio-mixer-panel.png"))
    # The mixer on a phone: stems stack, nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_function("() => document.documentElement.scrollWidth <= 390")
    page.locator("#mixer-panel").screenshot(path=str(OUTPUT / "studio-phone-mixer.png"))
    page.set_viewport_size({"width": 1280, "height": 900})

    # Commit the stems to a new repository.
    page.fill("#repo-name", "first-song")
    page.click("#create-repo")
    expect(page.locator("#repo-select option:checked")).to_contain_text("first-song")
    repo = page.wait_for_function("() => window.studio.state.repo && window.studio.state.repo.id").json_value()
    page.fill("#stems-message", "Stems of the first idea")
    page.click("#commit-stems")
    expect(page.locator("#graph .commit")).to_have_count(1)
    first = _head(http, repo, "main")
    assert first["message"] == "Stems of the first idea" and first["parent_ids"] == []
    assert set(_stem_blobs(first)) == {"drums", "bass", "other", "vocals"}
    expect(page.locator("#mixer-source")).to_contain_text(first["id"][:8])  # the commit is now in view

    # Branch from the commit in view, then put new drums on that branch.
    page.fill("#branch-name", "new-drums")
    page.click("#branch-create")
    expect(page.locator("#branch-select")).to_have_value("new-drums")
    branches = {b["name"]: b["commit_id"] for b in http.get(f"/api/repositories/{repo}/branches").json()["refs"]}
    assert branches == {"main": first["id"], "new-drums": first["id"]}
    drums_a = tmp_path / "drums-a.wav"
    drums_a.write_bytes(tone_wav(1.5, rate=32000, freq=90.0, gain=0.6))
    page.select_option("#replace-stem", "drums")
    page.set_input_files("#replace-file", str(drums_a))
    expect(page.locator("#graph .commit")).to_have_count(2)
    second = _head(http, repo, "new-drums")
    assert second["parent_ids"] == [first["id"]] and second["message"] == "New drums"
    changed = {n for n, b in _stem_blobs(second).items() if _stem_blobs(first)[n] != b}
    assert changed == {"drums"}
    assert _head(http, repo, "main")["id"] == first["id"]

    # Compare the branch's commit with its parent: stems side by side, A/B keeps the playhead.
    page.click("#view-compare")
    expect(page.locator("#compare-stems .compare-row")).to_have_count(4)
    expect(page.locator("#compare-stems .compare-row.change-changed")).to_have_attribute("data-stem", "drums")
    expect(page.locator("#diff thead")).to_contain_text("Change")
    expect(page.locator("#diff tr.change-changed")).to_contain_text("drums")
    expect(page.locator("#compare-stems .wave-slot.drawn")).to_have_count(8)
    page.wait_for_function("() => window.studio.ab.tracks.length === 2")
    page.click("#ab-play")
    page.wait_for_function("() => window.studio.ab.playing && window.studio.ab.position() > 0.3")
    before = page.evaluate("window.studio.ab.position()")
    page.click("#ab-b")
    expect(page.locator("#ab-b")).to_have_attribute("aria-checked", "true")
    after = page.evaluate("window.studio.ab.position()")
    assert after >= before, "switching A/B must not restart the stem"
    heard = page.evaluate("Object.fromEntries(window.studio.ab.tracks.map(t => [t.name, t.gainNode.gain.value]))")
    assert heard == {"A": 0, "B": 1}
    page.click("#ab-play")
    _shot(page, "studio-3-compare.png")
    page.locator("#compare-panel").screenshot(path=str(OUTPUT / "studio-compare-panel.png"))

    # Meanwhile main gets other drums: merging the branch conflicts on the drums.
    page.select_option("#branch-select", "main")
    expect(page.locator("#mixer-source")).to_contain_text(first["id"][:8])
    drums_b = tmp_path / "drums-b.wav"
    drums_b.write_bytes(tone_wav(1.5, rate=32000, freq=140.0, gain=0.4))
    page.select_option("#replace-stem", "drums")
    page.set_input_files("#replace-file", str(drums_b))
    expect(page.locator("#graph .commit")).to_have_count(3)
    third = _head(http, repo, "main")
    page.select_option("#merge-from", "new-drums")
    page.click("#merge-run")
    conflict = page.locator("#conflict-list .conflict")
    expect(conflict).to_have_count(1)
    expect(conflict).to_have_attribute("data-stem", "drums")
    expect(conflict.locator(".wave-slot.drawn")).to_have_count(2)
    conflict.locator("button", has_text="Play theirs").click()
    page.wait_for_function("() => window.studio.mergeAb.playing")
    page.check("input[name='resolve-drums'][value=theirs]")
    _shot(page, "studio-4-merge.png")
    page.click("#merge-resolve")
    expect(page.locator("#merge-status")).to_contain_text("Merged new-drums into main")
    merged = _head(http, repo, "main")
    assert sorted(merged["parent_ids"]) == sorted([third["id"], second["id"]])
    assert _stem_blobs(merged)["drums"] == _stem_blobs(second)["drums"]
    expect(page.locator("#graph .commit")).to_have_count(4)
    _shot(page, "studio-5-history.png")

    # Fork: a copy of the repository (no audio copied), opened at its head.
    page.click("#fork")
    expect(page.locator("#repo-select option:checked")).to_contain_text("(fork)")
    fork = page.wait_for_function(
        "() => window.studio.state.repo && window.studio.state.repo.forked_from_id && window.studio.state.repo"
    ).json_value()
    assert fork["forked_from_id"] == repo
    assert _head(http, fork["id"], "main")["id"] == merged["id"]
    expect(page.locator("#graph .commit.selected")).to_have_attribute("data-commit", merged["id"])

    # Revert the merge in the fork: the drums go back to main's version.
    page.click("#view-revert")
    expect(page.locator("#graph .commit")).to_have_count(5)
    reverted = _head(http, fork["id"], "main")
    assert reverted["parent_ids"] == [merged["id"]] and reverted["message"].startswith("Revert")
    assert _stem_blobs(reverted)["drums"] == _stem_blobs(third)["drums"]
    assert _head(http, repo, "main")["id"] == merged["id"]  # the original is untouched

    # Blame: which commit last changed each stem.
    page.click("#blame-run")
    expect(page.locator("#blame tbody tr")).to_have_count(4)
    expect(page.locator("#blame tr[data-stem=drums]")).to_contain_text("Revert")
    expect(page.locator("#blame tr[data-stem=bass]")).to_contain_text("Stems of the first idea")
    blame = http.get(f"/api/vcs/blame/{fork['id']}").json()["entries"]
    assert {e["stem"]: e["commit"]["id"] for e in blame}["drums"] == reverted["id"]
    _shot(page, "studio-6-blame.png")

    # Errors are shown where the user acted, in words.
    page.fill("#branch-name", "")
    page.click("#branch-create")
    expect(page.locator("#branch-error")).to_have_text("name the new branch")
    page.fill("#repo-name", "first song with spaces")
    page.click("#create-repo")
    expect(page.locator("#repo-error")).to_contain_text("name")
    assert "{" not in page.locator("#repo-error").inner_text()
    assert take["task_id"]
    http.close()
    assert errors == []


def test_studio_at_phone_width(stack: Stack, browser: Browser) -> None:
    page, errors = _open(browser, 390, 844)
    http = _sign_up(page, stack, "phone")
    take = _generate(page, http)
    # Cancelling a new generation keeps the previous take, and it stays the one "Commit take" commits.
    page.fill("#duration", "120")
    page.click("#generate")
    page.click("#cancel")
    expect(page.locator("#progress-label")).to_contain_text("cancelled")
    expect(page.locator("#takes .take")).to_have_count(1)
    assert page.evaluate("window.studio.state.take.task_id") == take["task_id"]
    expect(page.locator("#generate-error")).to_have_text("")
    page.fill("#repo-name", "pocket")
    page.click("#create-repo")
    expect(page.locator("#repo-select option:checked")).to_contain_text("pocket")
    # Nothing is wider than the screen: no sideways scrolling, every card inside the viewport.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    overflowing = page.evaluate(
        """[...document.querySelectorAll('.card, .card *')]
            .filter(e => e.offsetParent !== null && e.getBoundingClientRect().right > 391)
            .filter(e => !e.closest('#graph-wrap, .table-wrap'))
            .map(e => e.id || e.className || e.tagName)"""
    )
    assert overflowing == []
    _shot(page, "studio-phone.png")
    http.close()
    assert errors == []


def _takes(seconds: float = 6.0, rate: int = 16000) -> tuple[bytes, bytes, bytes]:
    """A pulsing 220 Hz lead, the same lead with 2 s..4 s played at 1500 Hz (the known change), and a bass."""
    import io

    import numpy as np
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    pulse = (0.3 + 0.7 * np.abs(np.sin(2 * np.pi * t))) * (0.7 + 0.3 * np.sin(2 * np.pi * t / seconds))
    lead = 0.3 * pulse * np.sin(2 * np.pi * 220 * t)
    changed = lead.copy()
    middle = slice(2 * rate, 4 * rate)
    changed[middle] = 0.3 * pulse[middle] * np.sin(2 * np.pi * 1500 * t[middle])
    bass = 0.3 * (0.4 + 0.6 * np.abs(np.sin(np.pi * t))) * np.sin(2 * np.pi * 110 * t)

    def wav(x: Any) -> bytes:
        buf = io.BytesIO()
        sf.write(buf, np.stack([x, x], axis=1).astype(np.float32), rate, format="WAV", subtype="PCM_16")
        return buf.getvalue()

    return wav(lead), wav(changed), wav(bass)


def _fractions(page: Page, slot: Any, region: Any) -> tuple[float, float]:
    """Where a drawn region starts and ends, as fractions of its waveform's width."""
    outer, inner = slot.bounding_box(), region.bounding_box()
    assert outer is not None and inner is not None
    return (inner["x"] - outer["x"]) / outer["width"], (inner["x"] + inner["width"] - outer["x"]) / outer["width"]


@pytest.mark.slow
def test_review_on_the_compare_waveforms(stack: Stack, browser: Browser, tmp_path: Path) -> None:
    """Two takes of a lead differing at 2 s..4 s: compare draws that span, a click comments there; the
    comment is listed, drawn, replied to and resolved; the branch goes through a merge request, which a
    reader approves and the owner merges."""
    shots = tmp_path / "shots"
    shots.mkdir()

    def shot(name: str, locator: Any = None) -> None:
        path = shots / name
        (locator or page).screenshot(path=str(path), **({} if locator else {"full_page": False}))
        keep = Path("/tmp/review-shots")
        keep.mkdir(exist_ok=True)
        shutil.copy(path, keep / name)

    def panel(name: str) -> None:
        shot(name, page.locator("#compare-panel"))

    page, errors = _open(browser, 1280, 800)
    http = _sign_up(page, stack, "reviewer")
    token = page.evaluate("localStorage.getItem('bf_token')")
    seconds = 6.0
    before, after, bass = (stack.upload(token, data)["blob_key"] for data in _takes(seconds))
    repo = http.post("/api/repositories/create", json={"name": "review-song"}).json()["id"]
    stems = [{"name": "lead", "blob_key": before}, {"name": "bass", "blob_key": bass}]
    first = http.post(f"/api/vcs/commit/{repo}", json={"message": "first lead", "stems": stems}).json()
    r = http.post(f"/api/repositories/{repo}/branches", json={"name": "brighter", "from_ref": first["id"]})
    assert r.status_code == 201, r.text
    r = http.post(
        f"/api/vcs/commit/{repo}",
        json={
            "branch": "brighter",
            "message": "brighter middle",
            "stems": [{"name": "lead", "blob_key": after}],
            "inherit_stems": True,
        },
    )
    assert r.status_code == 201, r.text
    second = r.json()

    # Open the branch's commit and compare it with its parent: the sound diff runs as a task.
    page.reload()
    expect(page.locator("#studio")).to_be_visible()
    page.select_option("#repo-select", repo)
    page.select_option("#branch-select", "brighter")
    expect(page.locator("#mixer-source")).to_contain_text(second["id"][:8])
    page.click("#view-compare")
    expect(page.locator("#compare-stems .compare-row")).to_have_count(2)
    lead = page.locator(".compare-row[data-stem=lead]")
    head_wave = lead.locator(".wave-slot").nth(1)
    diff_region = head_wave.locator("[data-kind=diff]")
    expect(diff_region).to_have_count(1)  # bounded by the expect timeout
    expect(page.locator("#audio-diff-label")).to_contain_text("sound compared: 1 stem differ")
    expect(lead.locator(".audio-summary .verdict")).to_have_text("1 changed region")
    expect(lead.locator(".audio-summary")).to_contain_text("loudness")
    expect(page.locator(".compare-row[data-stem=bass] .audio-summary .verdict")).to_have_text("identical audio")
    expect(lead.locator(".wave-slot").nth(0).locator("[data-kind=diff]")).to_have_count(1)  # the base side too

    # The region is drawn over the changed span (2 s..4 s of 6 s, within 100 ms).
    start, end = _fractions(page, head_wave, diff_region)
    tolerance = 0.1 / seconds + 0.01
    assert abs(start - 2.0 / seconds) <= tolerance and abs(end - 4.0 / seconds) <= tolerance, (start, end)
    shot("review-1-diff.png")
    panel("review-1-compare-panel.png")

    # Click the region: a form anchored to lead at that span; the comment is listed and drawn.
    diff_region.click()
    form = lead.locator(".comment-form")
    expect(form).to_be_visible()
    expect(form.locator(".anchor")).to_contain_text("lead")
    form.locator("textarea").fill("The middle gets shrill here; can we soften the 1.5 kHz lead?")
    form.locator("button[type=submit]").click()
    thread = page.locator("#threads .thread")
    expect(thread).to_have_count(1)
    expect(thread).to_contain_text("soften the 1.5 kHz lead")
    expect(thread.locator(".chip-button.comment")).to_contain_text("#1 lead")
    expect(form).to_have_count(0)
    comment_region = head_wave.locator("[data-kind=comment]")
    expect(comment_region).to_have_count(1)
    (saved,) = http.get(f"/api/vcs/comments/{repo}", params={"commit": second["id"]}).json()["comments"]
    assert saved["stem"] == "lead" and saved["commit_id"] == second["id"]
    assert abs(saved["start_s"] - 2.0) <= 0.1 and abs(saved["end_s"] - 4.0) <= 0.1, saved
    c_start, c_end = _fractions(page, head_wave, comment_region)
    assert abs(c_start - start) <= 0.01 and abs(c_end - end) <= 0.01, (c_start, c_end, start, end)

    # Clicking the comment plays the stem from its time; a reply and resolve follow in the thread.
    thread.locator(".chip-button.comment").click()
    page.wait_for_function(
        "s => window.studio.ab.tracks.length === 2 && Math.abs(window.studio.ab.position() - s) < 0.3",
        arg=saved["start_s"],
    )
    thread.locator("input").fill("Agreed, a low-pass at 1 kHz.")
    thread.locator("button", has_text="Reply").click()
    expect(thread.locator(".reply")).to_contain_text("low-pass at 1 kHz")
    shot("review-2-comment.png")
    panel("review-2-compare-panel.png")
    thread.locator("button", has_text="Resolve").click()
    expect(page.locator("#threads .thread.resolved")).to_have_count(1)
    expect(head_wave.locator("[data-kind=resolved]")).to_have_count(1)
    comments = http.get(f"/api/vcs/comments/{repo}", params={"commit": second["id"]}).json()["comments"]
    assert [c["resolved"] for c in comments if not c["parent_id"]] == [True] and len(comments) == 2

    # Dragging across a head waveform selects a span to comment on; Cancel drops it.
    bass_wave = page.locator(".compare-row[data-stem=bass] .wave-slot").nth(1)
    box = bass_wave.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 6, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    bass_form = page.locator(".compare-row[data-stem=bass] .comment-form")
    expect(bass_form).to_be_visible()
    span = page.evaluate("(() => { const s = window.studio.review().selection; return [s.start, s.end]; })()")
    assert abs(span[0] - 1.0) <= 0.1 and abs(span[1] - 3.0) <= 0.1, span
    bass_form.locator("button", has_text="Cancel").click()
    expect(bass_form).to_have_count(0)
    assert page.evaluate("window.studio.review().selection") is None

    # Nothing in the compare panel is wider than its card at 1280 px.
    overflowing = page.evaluate(
        """(() => { const card = document.querySelector('#compare-panel').getBoundingClientRect();
            return [...document.querySelectorAll('#compare-panel *')]
              .filter(e => e.offsetParent !== null && e.getBoundingClientRect().right > card.right + 1)
              .filter(e => !e.closest('.table-wrap'))
              .map(e => e.id || e.className || e.tagName); })()"""
    )
    assert overflowing == []

    # A merge request from the branch: its diff and comments in the same view; the owner merges it.
    page.select_option("#branch-select", "main")
    page.select_option("#mr-source", "brighter")
    page.fill("#mr-new-title", "Brighter middle for the lead")
    page.click("#mr-open")
    expect(page.locator("#mr-bar")).to_be_visible()
    expect(page.locator("#mr-title")).to_contain_text("Brighter middle for the lead")
    expect(page.locator("#mr-state")).to_have_text("open")
    expect(page.locator("#compare-stems .compare-row")).to_have_count(1)  # only what the request changes
    expect(head_wave.locator("[data-kind=diff]")).to_have_count(1)
    expect(page.locator("#mr-approve")).to_be_disabled()  # not on one's own request
    expect(page.locator("#mr-merge")).to_be_visible()
    mr_region = page.locator(".compare-row[data-stem=lead] .wave-slot").nth(1).locator("[data-kind=diff]")
    mr_region.click()
    page.locator(".compare-row[data-stem=lead] .comment-form textarea").fill("Ready to merge after this.")
    page.locator(".compare-row[data-stem=lead] .comment-form button[type=submit]").click()
    expect(page.locator("#threads .thread")).to_have_count(1)
    shot("review-3-merge-request.png")
    panel("review-3-compare-panel.png")

    # A reader approves in their own studio (no merge button for them); the owner then sees it and merges.
    listener, listener_errors = _open(browser, 1280, 800)
    listener_http = _sign_up(listener, stack, "listener")
    name = listener.evaluate("localStorage.getItem('bf_user')")
    r = http.put(f"/api/repositories/{repo}/collaborators/{name}", json={"role": "read"})
    assert r.status_code == 200, r.text
    listener.reload()
    listener.select_option("#repo-select", repo)
    listener.locator("#mr-list li[data-number='1'] button.link").click()
    expect(listener.locator("#mr-bar")).to_be_visible()
    expect(listener.locator("#threads .thread")).to_contain_text("Ready to merge after this.")
    expect(listener.locator("#mr-merge")).to_be_hidden()
    listener.fill("#mr-review-body", "Sounds better.")
    listener.click("#mr-approve")
    expect(listener.locator("#mr-reviews .chip.verdict-approve")).to_contain_text(f"{name} approved")
    listener_http.close()
    listener.context.close()
    assert listener_errors == []
    page.locator("#mr-list li[data-number='1'] button.link").click()
    expect(page.locator("#mr-reviews .chip.verdict-approve")).to_contain_text(f"{name} approved")
    page.click("#mr-merge")
    expect(page.locator("#mr-state")).to_have_text("merged")
    expect(page.locator("#mr-status")).to_contain_text("Merged")
    merged = _head(http, repo, "main")
    assert _stem_blobs(merged)["lead"] == after
    expect(page.locator("#graph .commit.selected")).to_have_attribute("data-commit", merged["id"])  # in view
    (mr,) = http.get(f"/api/vcs/merge-requests/{repo}").json()["merge_requests"]
    assert mr["state"] == "merged"
    mr_comments = http.get(f"/api/vcs/comments/{repo}", params={"merge_request": mr["id"]}).json()["comments"]
    assert [c["stem"] for c in mr_comments] == ["lead"]
    shot("review-4-merged.png")
    # On a phone the review stacks: nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_function("() => document.documentElement.scrollWidth <= 390")
    panel("review-5-phone.png")
    http.close()
    assert errors == []


def test_blame_merge_request_card_and_own_comments(stack: Stack, browser: Browser) -> None:
    """What a producer sees around review: blame one line a stem at 1280 px; a comment on the older commit
    drawn on A's waveform; edit and delete of one's own comments (with a refusal shown); on a phone the
    merge-request card waits for a second branch and comes after the repository card."""
    page, errors = _open(browser, 1280, 900)
    http = _sign_up(page, stack, "polish")
    token = page.evaluate("localStorage.getItem('bf_token')")
    seconds = 6.0
    before, after, bass = (stack.upload(token, data)["blob_key"] for data in _takes(seconds))
    repo = http.post("/api/repositories/create", json={"name": "polish-song"}).json()["id"]
    stems = [{"name": "lead", "blob_key": before}, {"name": "bass", "blob_key": bass}]
    first = http.post(f"/api/vcs/commit/{repo}", json={"message": "first lead", "stems": stems}).json()
    long_message = "Brighter middle for the lead: 1.5 kHz from two to four seconds, the bass left as it was"
    second = http.post(
        f"/api/vcs/commit/{repo}",
        json={"message": long_message, "stems": [{"name": "lead", "blob_key": after}], "inherit_stems": True},
    ).json()
    comments = f"/api/vcs/comments/{repo}"
    anchor = {"stem": "lead", "start_s": 1.0, "end_s": 2.5}
    on_a = http.post(comments, json={"commit_id": first["id"], "body": "The 220 Hz lead is warm here", **anchor}).json()
    on_b = http.post(
        comments, json={"commit_id": second["id"], "body": "Too bright", "stem": "lead", "start_s": 3.0, "end_s": 4.0}
    ).json()
    page.reload()
    page.select_option("#repo-select", repo)
    expect(page.locator("#mixer-source")).to_contain_text(second["id"][:8])

    # One branch: the merge-request card says how to get something to propose instead of an empty picker.
    expect(page.locator("#mr-hint")).to_be_visible()
    expect(page.locator("#mr-propose")).to_be_hidden()

    # Blame at 1280 px: each row one line; cut-short text keeps its whole in the title.
    page.click("#blame-run")
    rows = page.locator("#blame tbody tr")
    expect(rows).to_have_count(2)
    lead_row = page.locator("#blame tr[data-stem=lead]")
    expect(lead_row.locator("code")).to_have_text(second["id"][:8])
    assert lead_row.locator("td").nth(0).get_attribute("title") == f"{second['id']}\n{long_message}"
    expect(lead_row.locator("td").nth(2)).to_have_text("just now")
    lines = page.evaluate(
        """[...document.querySelectorAll('#blame tbody tr')].map(r => {
             const s = getComputedStyle(r.cells[1]);
             return {height: r.getBoundingClientRect().height, line: parseFloat(s.lineHeight),
                     padding: parseFloat(s.paddingTop) + parseFloat(s.paddingBottom),
                     cut: r.cells[1].scrollWidth > r.cells[1].clientWidth}; })"""
    )
    for row in lines:
        assert row["height"] <= row["line"] + row["padding"] + 2, lines  # one line, not wrapped
    assert any(r["cut"] for r in lines), lines  # the long message is cut short
    page.locator("#blame-panel").screenshot(path=str(OUTPUT / "polish-1-blame-1280.png"))
    spans = page.evaluate(
        """async () => { const {ago} = await import('/static/api.js'); const n = 1e9;
             return [30, 300, 7200, 3 * 86400, 70 * 86400, 400 * 86400].map(s => ago(n - s, n)); }"""
    )
    assert spans == ["just now", "5 min ago", "2 h ago", "3 d ago", "2 mo ago", "1 y ago"]

    # Compare with the parent: the comment on A is drawn on A's waveform at its time, numbered and clickable.
    page.click("#view-compare")
    lead = page.locator(".compare-row[data-stem=lead]")
    wave_a, wave_b = lead.locator(".wave-slot").nth(0), lead.locator(".wave-slot").nth(1)
    band_a, band_b = wave_a.locator("[data-kind=comment]"), wave_b.locator("[data-kind=comment]")
    expect(band_a).to_have_count(1)
    expect(band_b).to_have_count(1)
    expect(band_a).to_contain_text("#1")
    expect(band_b).to_contain_text("#2")
    start, end = _fractions(page, wave_a, band_a)
    assert abs(start - 1.0 / seconds) <= 0.01 and abs(end - 2.5 / seconds) <= 0.01, (start, end)
    start, end = _fractions(page, wave_b, band_b)
    assert abs(start - 3.0 / seconds) <= 0.01 and abs(end - 4.0 / seconds) <= 0.01, (start, end)
    thread_a = page.locator(f"#threads .thread[data-comment='{on_a['id']}']")
    thread_b = page.locator(f"#threads .thread[data-comment='{on_b['id']}']")
    expect(thread_a.locator(".badge.side-a")).to_have_text("on A")
    expect(thread_b.locator(".badge.side-a")).to_have_count(0)
    expect(thread_b.locator(".comment-meta .hint")).to_have_text("just now")
    page.click("#ab-b")
    band_a.click()
    expect(thread_a).to_have_class("thread focused")
    expect(page.locator("#ab-a")).to_have_attribute("aria-checked", "true")  # the band plays A, from its time
    page.wait_for_function(
        "() => window.studio.ab.tracks.length === 2 && Math.abs(window.studio.ab.position() - 1) < 0.3"
    )
    page.locator("#compare-panel").screenshot(path=str(OUTPUT / "polish-2-compare-1280.png"))

    # Delete one's own comment: asked first (dismissing keeps it), then gone from the list, the waveform, the API.
    page.once("dialog", lambda dialog: dialog.dismiss())
    thread_a.locator("button.tool", has_text="Delete").click()
    expect(thread_a).to_have_count(1)
    page.once("dialog", lambda dialog: dialog.accept())
    thread_a.locator("button.tool", has_text="Delete").click()
    expect(thread_a).to_have_count(0)
    expect(band_a).to_have_count(0)
    (gone,) = http.get(comments, params={"commit": first["id"]}).json()["comments"]
    assert gone["deleted"] is True and gone["body"] == ""

    # Edit: the new text in the thread and through the API; a refusal is shown beside the comment.
    thread_b.locator("button.tool", has_text="Edit").click()
    thread_b.locator(".edit-form textarea").fill("Too bright: soften the 1.5 kHz lead")
    page.locator("#compare-panel").screenshot(path=str(OUTPUT / "polish-3-edit-1280.png"))
    thread_b.locator(".edit-form button[type=submit]").click()
    expect(thread_b.locator(".comment-body")).to_have_text("Too bright: soften the 1.5 kHz lead")
    expect(thread_b.locator(".edit-form")).to_have_count(0)
    assert http.get(comments, params={"commit": second["id"]}).json()["comments"][0]["body"] == (
        "Too bright: soften the 1.5 kHz lead"
    )
    thread_b.locator("button.tool", has_text="Edit").click()
    thread_b.locator(".edit-form textarea").fill("Meanwhile deleted elsewhere")
    assert http.delete(f"{comments}/{on_b['id']}").status_code == 200
    thread_b.locator(".edit-form button[type=submit]").click()
    expect(thread_b.locator(".comment .error")).to_contain_text("deleted")
    assert http.get(comments, params={"commit": second["id"]}).json()["comments"][0]["body"] == ""

    # A phone: the repository card comes before merge requests; a second branch brings the proposal picker.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_function("() => document.documentElement.scrollWidth <= 390")
    order = page.evaluate(
        """['mixer-panel', 'repo-panel', 'history-panel', 'compare-panel', 'mr-panel', 'blame-panel']
             .map(id => document.getElementById(id).getBoundingClientRect().top)"""
    )
    assert order == sorted(order), order
    expect(page.locator("#mr-hint")).to_be_visible()
    page.locator("#mr-panel").screenshot(path=str(OUTPUT / "polish-4-phone-merge-requests.png"))
    page.fill("#branch-name", "softer")
    page.click("#branch-create")
    expect(page.locator("#branch-select")).to_have_value("softer")
    expect(page.locator("#mr-propose")).to_be_visible()
    expect(page.locator("#mr-hint")).to_be_hidden()
    expect(page.locator("#mr-source option")).to_have_text(["main"])
    _shot(page, "polish-5-phone.png")
    http.close()
    assert errors == []
