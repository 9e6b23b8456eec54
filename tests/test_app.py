"""The app: its session logic (no browser), the page driven in headless Chromium (marker `browser`), and the exported
Space folder served by `python app.py`.

The browser tests need Debian's `chromium` (`scripts/setup.sh` installs it where it can) and the `playwright` package
(pointed at that browser; no `playwright install`). Without them they skip, naming what is missing; under CI
(`CI=true`) they fail instead.
"""

from __future__ import annotations

import copy
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CLASS_NAMES, make_images
from PIL import Image

from hf_tip import TipAdapterForImageClassification

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[1]


def missing(reason: str):
    """Skip with `reason`, or fail under CI, where the set-up script must have provided it."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: scripts/setup.sh must provide it)")
    pytest.skip(reason)


def dark_image() -> Image.Image:
    """An image the tiny model calls `red_square`, and `green circle` once it is added as an example of it."""
    rng = np.random.default_rng(0)
    for _ in range(2):  # the third draw of this generator: a dark noise image
        rng.integers(0, 60, size=(40, 48, 3))
    return Image.fromarray(rng.integers(0, 60, size=(40, 48, 3)).astype("uint8"))


@pytest.fixture(scope="module")
def app_model_dir(tmp_path_factory, tiny_clip):
    """A saved 3-class tiny Tip-Adapter with thumbnails (alpha 3, beta 8)."""
    model, processor = tiny_clip
    tip = TipAdapterForImageClassification.from_clip(model, CLASS_NAMES, processor=processor, alpha=3.0, beta=8.0)
    labels = [0, 1, 2, 0, 1, 2]
    tip.build_cache(make_images(labels, seed=1), labels, augment_epochs=2, show_progress=False, store_thumbnails=True)
    folder = tmp_path_factory.mktemp("app-model")
    tip.save_pretrained(folder)
    return folder


@pytest.fixture
def session(app_model_dir):
    pytest.importorskip("gradio")
    from hf_tip.cli.app import load_session

    return load_session(str(app_model_dir))


# ------------------------------------------------------------------------------------------------ session logic
def test_session_predicts_and_explains(session):
    prediction = session.predict(dark_image())
    assert next(iter(prediction.adapter)) == "red_square" and set(prediction.zero_shot) <= set(CLASS_NAMES)
    assert prediction.predicted and all("weight" in caption for _, caption in prediction.predicted)
    assert prediction.runner_up and "red_square" in prediction.why


def test_session_add_example_changes_the_prediction(session):
    message = session.add_example(dark_image(), "green circle")
    assert "Prediction: red_square" in message and "→ green circle" in message
    assert next(iter(session.predict(dark_image()).adapter)) == "green circle"


def test_session_without_thumbnails_says_so(app_model_dir, tmp_path):
    pytest.importorskip("gradio")
    from hf_tip.app.server import AppSession

    model = TipAdapterForImageClassification.from_pretrained(app_model_dir).disable_thumbnails()
    why = AppSession(model).predict(dark_image())
    assert not why.predicted and "stores no cache thumbnails" in why.why


@pytest.mark.parametrize(
    "action,message",
    [
        (lambda s, p: s.add_class(dark_image(), "  "), "needs a name"),
        (lambda s, p: s.add_class(dark_image(), "red_square"), "already a class"),
        (lambda s, p: s.add_example(dark_image(), None), "Choose the class"),
        (lambda s, p: s.add_example(dark_image(), "nope"), "Unknown class 'nope'"),
        (lambda s, p: s.save("  "), "folder"),
        (lambda s, p: __import__("hf_tip.app.server").app.server.open_image(p), "bad.txt"),
    ],
)
def test_session_bad_input_raises_and_keeps_the_model(session, tmp_path, action, message):
    bad = tmp_path / "bad.txt"
    bad.write_text("not an image")
    before = copy.deepcopy(session.model.state_dict()), copy.deepcopy(session.model.config.to_dict())
    with pytest.raises(ValueError, match=message):
        action(session, bad)
    assert session.model.config.to_dict() == before[1]
    assert all(torch.equal(v, before[0][k]) for k, v in session.model.state_dict().items())


def test_session_sliders_score_validation(app_model_dir, tmp_path):
    pytest.importorskip("gradio")
    from hf_tip.cli.app import load_session

    for name, label in (("red_square", 0), ("green circle", 1)):
        (tmp_path / "val" / name).mkdir(parents=True)
        for i, image in enumerate(make_images([label] * 3, seed=11)):
            image.save(tmp_path / "val" / name / f"{i}.png")
    session = load_session(str(app_model_dir), str(tmp_path / "val"))
    assert session.validation[0].shape == (6, 16) and sorted(session.validation[1].tolist()) == [0, 0, 0, 1, 1, 1]
    assert "Validation accuracy" in session.set_hyperparameters(0.0, 1.0) and session.model.config.alpha == 0.0


# ------------------------------------------------------------------------------------------------ served pages
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(command: list[str], cwd: Path, env: dict, log: Path, timeout: float = 120.0):
    """Start `command` and wait until it answers HTTP on the port in `env`; returns the process and the URL."""
    url = f"http://127.0.0.1:{env['GRADIO_SERVER_PORT']}/"
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{command} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise AssertionError(f"{command} did not serve {url} within {timeout}s:\n{log.read_text()[-3000:]}")


def server_env(port: int, pythonpath: bool = True) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1", GRADIO_ANALYTICS_ENABLED="False")
    if pythonpath:
        env["PYTHONPATH"] = str(REPO)  # this checkout's hf_tip
    return env


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        missing(f"{CHROMIUM} not found: install Debian's chromium (scripts/setup.sh does, as root with apt)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the `playwright` package is not installed (pip install hf-tip[dev])")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def app_url(app_model_dir, tmp_path_factory):
    pytest.importorskip("gradio")
    log = tmp_path_factory.mktemp("app-log") / "app.log"
    port = free_port()
    command = [sys.executable, "-m", "hf_tip.cli", "app", str(app_model_dir), "--port", str(port)]
    process, url = serve(command, REPO, server_env(port), log)
    yield url
    stop(process)


def wait_for_message(page, text: str, timeout: float = 30_000) -> str:
    page.wait_for_function(
        "t => (document.querySelector('#message')?.innerText || '').includes(t)", arg=text, timeout=timeout
    )
    return page.locator("#message").inner_text()


def top_label(page) -> str:
    return page.locator("#adapter-label h2, #adapter-label .output-class").first.inner_text().strip()


@pytest.mark.browser
def test_page_classifies_explains_and_learns(browser, app_url, tmp_path):
    image_path = tmp_path / "dark.png"
    dark_image().save(image_path)
    page = browser.new_page(viewport={"width": 1280, "height": 1500})
    page.goto(app_url)
    page.locator("#upload input[type=file]").set_input_files(str(image_path))
    wait_for_message(page, "Classified")
    assert top_label(page) == "red_square"
    assert page.locator("#why-predicted img").count() >= 1  # the thumbnails behind the decision
    assert page.locator("#why-runner-up img").count() >= 1
    assert "weight" in page.locator("#why-predicted").inner_text()
    page.screenshot(path=str(tmp_path / "before.png"), full_page=True)

    page.locator("#class-choice input").fill("green circle")
    page.locator("#class-choice input").press("Enter")
    page.locator("#add-example").click()
    assert "→ green circle" in wait_for_message(page, "Added the image")
    assert top_label(page) == "green circle"
    page.screenshot(path=str(tmp_path / "after.png"), full_page=True)
    assert (tmp_path / "after.png").stat().st_size > 10_000

    page.locator("#save-folder input, #save-folder textarea").first.fill(str(tmp_path / "saved"))
    page.locator("#save").click()
    wait_for_message(page, "Saved the adapter")
    assert TipAdapterForImageClassification.from_pretrained(tmp_path / "saved").config.cache_size == 7
    page.close()


@pytest.mark.browser
def test_page_shows_bad_input_as_a_message(browser, app_url, tmp_path):
    page = browser.new_page()
    page.goto(app_url)
    new_name = page.locator("#new-class-name input, #new-class-name textarea").first
    new_name.fill("red_square")
    page.locator("#add-class").click()
    assert "already a class" in wait_for_message(page, "already a class")
    new_name.fill("   ")
    page.locator("#add-class").click()
    wait_for_message(page, "needs a name")
    (tmp_path / "notes.txt").write_text("not an image")
    page.locator("#upload input[type=file]").set_input_files(str(tmp_path / "notes.txt"))
    assert "'notes.txt' is not an image file" in wait_for_message(page, "not an image")
    body = page.locator("body").inner_text()
    assert "Traceback" not in body and "Error" not in body.replace("⚠️", "")
    page.close()


def test_exported_space_serves_with_python_app_py(app_model_dir, tmp_path):
    pytest.importorskip("gradio")
    from hf_tip.cli import main

    space = tmp_path / "space"
    assert main(["app", str(app_model_dir), "--export_space", str(space)]) == 0
    readme = (space / "README.md").read_text()
    assert readme.startswith("---\n") and "sdk: gradio" in readme and "app_file: app.py" in readme
    assert "gradio==" in (space / "requirements.txt").read_text()
    assert (space / "model" / "thumbnails.safetensors").is_file() and (space / "hf_tip" / "app" / "server.py").is_file()
    port = free_port()
    env = server_env(port, pythonpath=False)  # the Space's own hf_tip copy, as on the Hub
    process, url = serve([sys.executable, "app.py"], space, env, tmp_path / "space.log")
    try:
        with urllib.request.urlopen(url + "config", timeout=5) as response:
            assert "the cache examples that weighed most" in response.read().decode()  # the app, not any server
    finally:
        stop(process)
    shutil.rmtree(space / "hf_tip")
