"""Drive the `twingan serve` page in headless Chromium: upload a photo, wait for the result, screenshot.

    python tools/serve_screenshot.py --checkpoint runs/char64 --index runs/faces.index \
        --photo ../shared/data/selfie2anime/trainA/female_9994.jpg --pick 5 -o docs/serve_page.png

The browser test (tests/test_serve_browser.py) runs the same `use_page` against a tiny model;
this script runs it against a real checkpoint for the README's screenshot. It uses Debian's
chromium and chromium-driver packages (`apt-get install chromium chromium-driver`) and downloads
nothing.
"""

from __future__ import annotations

import argparse
import base64
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from twingan.atomic import atomic_path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> tuple[str, str] | None:
    """(browser, chromedriver) paths when both are installed, else None."""
    browser = next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def open_browser(width: int = 1100, height: int = 900):
    """A headless Chromium controlled through the system chromedriver (nothing downloaded)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_chromium()
    if found is None:
        raise SystemExit("Chromium and chromedriver are needed: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(found[1]), options=options)


@dataclass
class PageOutcome:
    state: str
    status: str
    result_width: int
    download_name: str
    neighbours: int
    character_offered: bool
    result: bytes
    """The file the download link gives (empty when there is no result)."""


def use_page(browser, url: str, photo: Path, pick: int | None = None, reference: Path | None = None,
             screenshot: Path | None = None, timeout_s: float = 60.0) -> PageOutcome:
    """Open the page, optionally pick gallery picture number `pick` or upload a `reference` character,
    upload `photo`, and wait for the outcome."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def body_state(_=None) -> str:
        return browser.find_element(By.TAG_NAME, "body").get_attribute("data-state")

    browser.get(url)
    WebDriverWait(browser, timeout_s).until(lambda _: body_state() in ("ready", "error"))
    if pick is not None:
        WebDriverWait(browser, timeout_s).until(
            lambda _: len(browser.find_elements(By.CSS_SELECTOR, "#gallery figure img")) > pick)
        browser.find_elements(By.CSS_SELECTOR, "#gallery figure")[pick].click()
    if reference is not None:
        browser.find_element(By.ID, "reference").send_keys(str(Path(reference).resolve()))
    browser.find_element(By.ID, "photo").send_keys(str(Path(photo).resolve()))
    WebDriverWait(browser, timeout_s).until(lambda _: body_state() in ("done", "error"))
    result_width = browser.execute_script(
        "const img = document.getElementById('anime-view'); return img.complete ? img.naturalWidth : 0;")
    neighbours = len(browser.find_elements(By.CSS_SELECTOR, "#neighbours:not([hidden]) .strip img"))
    outcome = PageOutcome(body_state(), browser.find_element(By.ID, "status").text, int(result_width or 0),
                          browser.find_element(By.ID, "download").get_attribute("download"), neighbours,
                          browser.find_element(By.ID, "character").is_displayed(), _download(browser))
    if screenshot is not None:
        WebDriverWait(browser, timeout_s).until(lambda _: browser.execute_script(
            "return [...document.images].filter(i => i.offsetParent && i.src).every(i => i.complete);"))
        shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        with atomic_path(screenshot) as tmp:
            tmp.write_bytes(base64.b64decode(shot["data"]))
    return outcome


def _download(browser) -> bytes:
    """The bytes behind the page's download link, read in the page itself (a blob: URL)."""
    encoded = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const link = document.getElementById("download");
        if (!link.href.startsWith("blob:")) { done(""); return; }
        fetch(link.href).then(r => r.blob()).then(blob => {
            const reader = new FileReader();
            reader.onload = () => done(reader.result.split(",")[1]);
            reader.readAsDataURL(blob);
        });""")
    return base64.b64decode(encoded or "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--index")
    parser.add_argument("--photo", type=Path, required=True)
    parser.add_argument("--pick", type=int, help="Pick this gallery picture (0-based) as the character.")
    parser.add_argument("-o", "--out", type=Path, default=Path("docs/serve_page.png"))
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_serve import running_server

    serve_args = ["--checkpoint", args.checkpoint] + (["--index", args.index] if args.index else [])
    with running_server(serve_args) as (url, _):
        browser = open_browser()
        try:
            outcome = use_page(browser, url, args.photo, args.pick, screenshot=args.out)
        finally:
            browser.quit()
    print(f"{outcome.state}: {outcome.status!r}; result {outcome.result_width} px wide, "
          f"{outcome.neighbours} neighbours shown; screenshot {args.out}")
    sys.exit(0 if outcome.state == "done" else 1)


if __name__ == "__main__":
    main()
