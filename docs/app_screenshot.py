"""Make docs/app.png: the app on the demo data (`hf-tip demo` output, random-init CLIP offline), with thumbnails.

.venv/bin/hf-tip demo                      # writes ./tip-adapter-textile-demo
.venv/bin/python docs/app_screenshot.py    # needs gradio, playwright and Debian's chromium
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

from hf_tip import TipAdapterForImageClassification
from hf_tip.cli.demo import CLASS_FOLDERS, textile_dataset, textile_root
from hf_tip.data.datasets import sample_few_shot

DOCS = Path(__file__).resolve().parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def main(demo_dir: str = "tip-adapter-textile-demo") -> None:
    model = TipAdapterForImageClassification.from_pretrained(demo_dir)
    dataset = textile_dataset(textile_root(None), seed=1)
    train = dataset["train"]
    picked = sample_few_shot(list(train["label"]), model.config.num_shots, 1, list(CLASS_FOLDERS))
    model.enable_thumbnails(size=64, images=list(train.select(picked)["image"]))  # the cache's images, in cache order
    folder = Path(tempfile.mkdtemp()) / "demo-with-thumbnails"
    model.save_pretrained(folder)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "hf_tip.cli", "app", str(folder), "--port", str(port)])
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(240):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        image = dataset["test"][0]["image"]
        path = folder / "query.png"
        image.save(path)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1300})
            page.goto(url)
            page.locator("#upload input[type=file]").set_input_files(str(path))
            page.wait_for_function("(document.querySelector('#message')?.innerText || '').includes('Classified')")
            time.sleep(1)
            page.screenshot(path=str(DOCS / "app.png"), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait()
    print(f"Wrote {DOCS / 'app.png'}")


if __name__ == "__main__":
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    main(*sys.argv[1:])
