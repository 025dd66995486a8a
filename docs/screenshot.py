"""Take the README's screenshot of the demo (docs/images/demo.png) in headless Chromium.

Uses Debian's Chromium (`apt-get install chromium`) through Playwright, like the browser test:

    .venv/bin/python docs/screenshot.py [--model PATH] [--out docs/images/demo.png]
"""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

STATEMENT = ("We are still ready to negotiate, even though the other side has broken every "
             "promise so far.")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shoot(url: str, out: Path, statement: str) -> None:
    """Classify one example statement and capture the page down to the explanation."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
        page.goto(url, wait_until="networkidle")
        page.get_by_text(statement[:40]).first.click()
        page.locator("#explanation-summary").get_by_text("Word occlusion").wait_for(
            timeout=60_000)
        page.mouse.move(0, 0)  # no hover highlight in the picture
        page.evaluate("window.scrollTo(0, 0)")  # boxes are relative to the scrolled viewport
        boxes = [page.locator(sel).bounding_box() for sel in ("#explanation-summary",
                                                               "#guideline")]
        bottom = max(box["y"] + box["height"] for box in boxes)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True,
                        clip={"x": 0, "y": 0, "width": 1280, "height": bottom + 24})
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model folder (default: the default model)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "images" / "demo.png")
    parser.add_argument("--statement", default=STATEMENT, help="an example statement to click")
    args = parser.parse_args()
    import tempfile

    from model.classifier import Classifier
    from serve.demo import launch

    with tempfile.TemporaryDirectory() as tmp:
        app = launch(Classifier.load(args.model), port=free_port(), block=False,
                     corrections_path=Path(tmp) / "corrections.jsonl")
        try:
            shoot(app.local_url, args.out, args.statement)
        finally:
            app.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
