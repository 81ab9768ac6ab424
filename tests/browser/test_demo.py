"""The demo workspace in a real browser: two users in two browser contexts.

Against a real `roomcast serve --demo` process: a box drawn by one user appears at
the other's with the same version; a lease taken by one refuses the other; a user
who goes offline gets the other's edit replayed on return (`replayed > 0`, no gap);
the model run streams detections whose frames/s figure moves; presence shows both
users, then neither as they close. A screenshot of each step goes to a temporary
folder (its path is printed), and any console error of either page fails the test.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import DemoServer

pytestmark = pytest.mark.timeout(90)
STEP_TIMEOUT_MS = 10_000


class Window:
    """One user's page, with the console errors it logged."""

    def __init__(self, browser: Any, server: DemoServer, name: str, shots: Path) -> None:
        self.name = name
        self.context = browser.new_context(viewport={"width": 1200, "height": 900})
        self.context.set_default_timeout(STEP_TIMEOUT_MS)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.shots = shots
        self.page.goto(f"{server.url}/demo?user={name}")
        self.page.wait_for_selector("body[data-ready='true']")

    def _console(self, msg: Any) -> None:
        if msg.type == "error":
            self.errors.append(f"console: {msg.text}")

    def shot(self, step: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{step}-{self.name.lower()}.png"))

    def canvas_point(self, x: float, y: float) -> tuple[float, float]:
        box = self.page.locator("#canvas").bounding_box()
        assert box is not None
        return box["x"] + x * box["width"] / 640, box["y"] + y * box["height"] / 400

    def drag(self, start: tuple[float, float], end: tuple[float, float]) -> None:
        mouse = self.page.mouse
        mouse.move(*self.canvas_point(*start))
        mouse.down()
        mouse.move(*self.canvas_point(*end), steps=6)
        mouse.up()

    def click(self, x: float, y: float) -> None:
        self.page.mouse.click(*self.canvas_point(x, y))

    def text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text()

    def wait(self, expression: str, arg: Any = None) -> None:
        self.page.wait_for_function(expression, arg=arg)

    def annotation(self, annotation_id: str) -> Any:
        return self.page.locator(f"#annotations li[data-id='{annotation_id}']")


def only_annotation_id(window: Window) -> str:
    window.page.wait_for_selector("#annotations li[data-id]")
    ids = window.page.eval_on_selector_all("#annotations li", "els => els.map(e => e.dataset.id)")
    assert len(ids) == 1, ids
    return str(ids[0])


def test_two_users_in_the_workspace(chromium: Any, demo_server: DemoServer) -> None:
    shots = Path(tempfile.mkdtemp(prefix="roomcast-demo-shots-"))
    print(f"screenshots in {shots}")
    ann = Window(chromium, demo_server, "Ann", shots)
    ben = Window(chromium, demo_server, "Ben", shots)
    windows = [ann, ben]
    try:
        # Presence: each page shows both users.
        for w in windows:
            w.page.wait_for_selector("#presence li[data-user='ann']")
            w.page.wait_for_selector("#presence li[data-user='ben']")
        ann.shot("01-presence")

        # A box drawn by Ann reaches Ben with the same version.
        ann.drag((120, 240), (260, 320))
        box_id = only_annotation_id(ann)
        ann.annotation(box_id).and_(ann.page.locator("[data-version='1']")).wait_for()
        ben.annotation(box_id).and_(ben.page.locator("[data-version='1']")).wait_for()
        assert ann.annotation(box_id).get_attribute("data-label") == ben.annotation(
            box_id
        ).get_attribute("data-label")
        ann.shot("02-box-drawn")
        ben.shot("02-box-seen")

        # Ann holds its lease (taken on create); Ben asks for it and is refused.
        ann.page.wait_for_selector("#selection[data-state='held']")
        ben.annotation(box_id).and_(ben.page.locator("[data-holder='ann']")).wait_for()
        ben.click(190, 280)
        ben.page.wait_for_selector("#selection[data-state='refused']")
        assert "Locked by Ann" in ben.text("#lease")
        ben.shot("03-lease-refused")

        # Ann moves it: version 2 on both pages.
        ann.drag((190, 280), (230, 270))
        for w in windows:
            w.annotation(box_id).and_(w.page.locator("[data-version='2']")).wait_for()

        # Ben goes offline; Ann edits; Ben comes back and the edit is replayed.
        ben.page.keyboard.press("Escape")
        ben.page.click("#offline")
        ben.page.wait_for_selector("#conn[data-state='offline']")
        ann.drag((230, 270), (300, 250))
        ann.annotation(box_id).and_(ann.page.locator("[data-version='3']")).wait_for()
        assert ben.annotation(box_id).get_attribute("data-version") == "2"
        ben.shot("04-offline")
        ben.page.click("#offline")
        ben.page.wait_for_selector("#conn[data-state='connected']")
        ben.wait("() => Number(document.getElementById('replayed').textContent) > 0")
        ben.annotation(box_id).and_(ben.page.locator("[data-version='3']")).wait_for()
        assert ben.text("#recovered") == "true"
        assert ben.text("#gaps") == "0"
        ben.shot("05-replayed")

        # Ann sends the box for review: the worker validates it and notifies Ann.
        ann.page.click("#review")
        ann.page.wait_for_selector("#notifications li:has-text('validated')")
        ben.annotation(box_id).and_(ben.page.locator("[data-status='accepted']")).wait_for()

        # The model run: detections arrive on both pages and frames/s moves.
        ann.page.locator("#rate").evaluate(
            "el => { el.value = '100'; el.dispatchEvent(new Event('input')); }"
        )
        ann.page.click("#run")
        for w in windows:
            w.wait("() => Number(document.getElementById('fps').textContent) >= 20")
            w.wait("() => Number(document.getElementById('frames').textContent) >= 50")
        first = int(ben.text("#frames"))
        ben.wait("n => Number(document.getElementById('frames').textContent) > n", first)
        ann.page.wait_for_selector("#progress:has-text('model test')")
        ann.shot("06-model")
        ben.shot("06-model")
        ann.page.click("#run")
        ann.page.wait_for_selector("#run[data-running='false']")

        # Presence: Ben closes, Ann sees him leave; then Ann closes too.
        ben.context.close()
        windows.remove(ben)
        ann.page.locator("#presence li[data-user='ben']").wait_for(state="detached")
        ann.shot("07-ben-left")
        assert demo_server.presence("annotation_demo") == ["ann"]
        ann.context.close()
        windows.remove(ann)
        assert ann.errors == [] and ben.errors == [], ann.errors + ben.errors
    finally:
        for w in windows:
            w.context.close()
