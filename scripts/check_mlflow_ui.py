"""Check in a real headless browser what a user sees of pvf's experiment in the MLflow UI.

pvf tags each experiment `mlflow.experimentKind=custom_model_development` (so MLflow 3 should
open it on the runs table, not its GenAI pages), stores two saved views of the runs table
(`pvf: compare runs`, `pvf: mean over seeds`) and rounds the fractions it logs to 4 significant
digits. None of that can be tested without a browser: this script opens the UI the way a user
does, prints one PASS/FAIL line per check, saves a PNG screenshot before each assertion and
exits 1 when a check fails.

Setup, once (Debian; never `playwright install`, it downloads a browser):
    apt-get install -y chromium              # the browser, /usr/bin/chromium
    pip install playwright                   # its Python driver only
Run, in the project's virtualenv:
    python scripts/check_mlflow_ui.py [--out DIR] [--store sqlite:///path/mlflow.db]
Without --store it first logs a small sweep with pvf in a temp folder (about a minute on 2 CPU
cores). Screenshots go to --out (default ./ui-check/).
"""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SWEEP = ["-m", "task=intent_sample", "model=tiny", "model.tiny.n_layer=1", "arm=zero_shot,lora",
         "seed=0,1", "test_size=16", "model.max_epochs=1"]
VIEWS = ["pvf: compare runs", "pvf: mean over seeds"]
WANTED = ["test/accuracy", "cost/usd_per_1k_predictions"]  # in view, without scrolling right
GENAI_NAV = {"Sessions", "Judges", "Evaluation runs", "Evaluations", "Review"}  # GenAI-only
WAIT_MS = 60_000
results: list[tuple[str, bool, str]] = []


def check(name: str, ok: bool, seen: str) -> bool:
    results.append((name, ok, seen))
    print(f"{'PASS' if ok else 'FAIL'} {name}: {seen}", flush=True)
    return ok


def make_store(folder: Path) -> str:
    """Log a small sweep with pvf into folder/mlflow.db."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {"HF_HUB_OFFLINE": "1"}
    pvf = shutil.which("pvf", path=str(Path(sys.executable).parent)) or "pvf"
    print(f"logging a sweep with pvf in {folder} ...", flush=True)
    with open(folder / "pvf.log", "w") as log:
        subprocess.run([pvf, *SWEEP], cwd=folder, env=env, stdout=log, stderr=log, check=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def start_server(store: str, log_path: Path) -> tuple[subprocess.Popen, str]:
    """`mlflow server` on a free port (one worker, no job runner: light on a small machine)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cwd = Path(store.removeprefix("sqlite:///")).parent if store.startswith("sqlite:///") else None
    mlflow = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen(
        [str(mlflow), "server", "--backend-store-uri", store, "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"], cwd=cwd, start_new_session=True,
        stdout=open(log_path, "w"), stderr=subprocess.STDOUT,
        env=os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    url = f"http://127.0.0.1:{port}"
    for _ in range(180):
        try:
            if urllib.request.urlopen(url + "/health", timeout=2).status == 200:
                return proc, url
        except OSError:
            if proc.poll() is not None:
                break
        time.sleep(1)
    stop_server(proc)
    raise RuntimeError(f"mlflow server did not answer on {url}/health; see {log_path}")


def stop_server(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def until(page: Page, condition, timeout_ms: int = WAIT_MS) -> bool:
    """Poll `condition()` (the React app renders in stages), then let the page settle."""
    deadline = time.time() + timeout_ms / 1000
    while time.time() < deadline:
        if condition():
            page.wait_for_timeout(1500)
            return True
        page.wait_for_timeout(500)
    return False


def runs_table(page: Page) -> bool:
    return page.locator(".ag-header-cell", has_text="Run Name").first.is_visible()


def genai_nav(page: Page) -> set[str]:
    """(CSS, not roles: a feature tip's modal hides the rest of the page from roles.)"""
    lines = "\n".join(page.locator("nav").all_inner_texts()).splitlines()
    return GENAI_NAV & {line.strip() for line in lines}


def dismiss(page: Page) -> None:
    """What a first visit pops up: a feature tip and the MLflow Assistant panel."""
    for name in ("Got it", "Close"):
        button = page.get_by_role("button", name=name, exact=True)
        if button.count() and button.first.is_visible():
            button.first.click()
            page.wait_for_timeout(500)


def layout(page: Page, name: str, shot: Path) -> bool:
    """The runs table is shown and the GenAI navigation is not."""
    until(page, lambda: runs_table(page) or bool(genai_nav(page)))
    page.screenshot(path=shot)
    table, genai = runs_table(page), genai_nav(page)
    dismiss(page)
    seen = f"{'runs table' if table else 'no runs table'}; GenAI nav: {sorted(genai) or 'none'}"
    return check(name, table and not genai, f"{seen}; {page.url.split('#')[-1][:90]}")


def sig_digits(text: str) -> int:
    """Significant digits of a displayed fraction (0 for integers and non-numbers)."""
    t = text.strip().replace(",", "")
    m = re.fullmatch(r"-?(\d*)\.(\d+)(?:e[-+]?\d+)?|-?(\d+)()e[-+]?\d+", t, re.I)
    return len("".join(g or "" for g in m.groups()).lstrip("0")) if m else 0


def unrounded(texts: list[str]) -> list[str]:
    return sorted({t for t in texts if sig_digits(t) > 4})


def open_views_menu(page: Page) -> list[str]:
    trigger = page.get_by_test_id("saved-views-trigger")
    (trigger if trigger.count() else page.get_by_role("button", name="Views")).first.click()
    until(page, lambda: page.get_by_role("menuitem").count() > 0, 15_000)
    return [" ".join(t.split()) for t in page.get_by_role("menuitem").all_inner_texts()]


def choose_view(page: Page, view: str, menu_open: bool = False) -> bool:
    if view not in (page.get_by_role("menuitem").all_inner_texts() if menu_open
                    else open_views_menu(page)):
        return False
    page.get_by_role("menuitem", name=view).first.click()
    return until(page, lambda: "viewStateShareKey" in page.url and runs_table(page))


def check_saved_view(page: Page, out: Path) -> None:
    listed = open_views_menu(page)
    page.screenshot(path=out / "2-views-menu.png")
    check("views menu", all(v in listed for v in VIEWS), f"menu lists {listed}")
    chosen = choose_view(page, VIEWS[0], menu_open=True)
    if not layout(page, f"saved view '{VIEWS[0]}' keeps the runs table", out / "3-saved-view.png"):
        return
    area = page.locator(".ag-center-cols-viewport").first.bounding_box()
    right = min(area["x"] + area["width"], page.viewport_size["width"]) if area else 0
    shown, hidden = [], []
    for key in WANTED:
        box = page.locator(f'.ag-header-cell[col-id="metrics.`{key}`"]').first
        b = box.bounding_box() if box.count() else None
        (shown if b and b["x"] + b["width"] <= right + 1 else hidden).append(
            f"{key}@x{int(b['x'])}-{int(b['x'] + b['width'])}" if b else f"{key}@absent")
    order = [c.split("`")[1] for c in page.locator(".ag-header-cell[col-id^='metrics.']")
             .evaluate_all("es => es.map(e => e.getAttribute('col-id'))")]
    check("saved view shows quality and cost columns without scrolling right",
          chosen and WANTED[0] in " ".join(shown),
          f"visible {shown}, cut off {hidden} (table's right edge x{int(right)}); "
          f"metric columns in order {order}")
    cells = page.locator(".ag-cell[col-id^='metrics.']").all_inner_texts()
    bad = unrounded(cells)
    check("saved view values rounded to <= 4 significant digits", bool(cells) and not bad,
          f"{len(cells)} metric cells; unrounded: {bad or 'none'}")


def check_compare(page: Page, out: Path) -> None:
    boxes = page.get_by_role("checkbox", name=re.compile("toggle row selection")).all()
    boxes[0].check()  # the best run of the view and the worst
    boxes[-1].check()
    page.get_by_role("button", name="Compare", exact=True).click()
    until(page, lambda: page.get_by_text("Comparing 2 Runs").count() > 0)
    page.screenshot(path=out / "4-compare.png")
    heading = page.get_by_text("Metrics", exact=True).last
    y = int(heading.bounding_box()["y"]) if heading.count() else -1  # before any scrolling
    heading.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    page.screenshot(path=out / "4-compare-metrics.png")
    section = heading.locator("xpath=ancestor::div[contains(@class,'collapse-item')][1]")
    names = section.locator("a[title='Plot chart']").all_inner_texts()
    values = section.locator("[role=grid]").last.inner_text().split() if section.count() else []
    quality = [n for n in names if n.startswith("test/")]
    check("compare view of 2 runs", page.get_by_text("Comparing 2 Runs").count() > 0,
          f"Metrics section at y={y} of a {page.viewport_size['height']}px window; first rows "
          f"{names[:3]}; quality rows rendered without scrolling the list: {quality or 'none'}; "
          f"values over 4 significant digits: {unrounded(values) or 'none'}")


def check_run_page(page: Page, out: Path) -> None:
    page.go_back()
    until(page, lambda: runs_table(page))
    if "viewStateShareKey" not in page.url:  # the view lists job runs only, best first
        choose_view(page, VIEWS[0])
    link = page.locator(".ag-cell[col-id='attributes.`Run Name`'] a").first
    run_name = link.inner_text()
    link.click()
    until(page, lambda: page.get_by_role("tab", name="Model metrics").count() > 0)
    page.screenshot(path=out / "5-run-overview.png")
    table = page.get_by_role("table").filter(
        has=page.get_by_role("columnheader", name="Metric", exact=True))
    rows = [r.split("\n") for r in table.get_by_role("row").all_inner_texts()]
    long = [f"{r[0]}={r[-1]}" for r in rows if len(r) > 1 and sig_digits(r[-1]) > 4]
    check("run page", page.get_by_role("tab", name="Model metrics").count() > 0,
          f"'{run_name}' overview, Metrics table; over 4 significant digits: {long or 'none'}")
    page.get_by_role("tab", name="Model metrics").click()
    headers = page.get_by_test_id("experiment-view-compare-runs-section-header")
    until(page, lambda: headers.count() > 0)
    page.screenshot(path=out / "6-run-model-metrics.png")
    sections = [" ".join(h.split()[:2]) for h in headers.all_inner_texts()]
    in_view = [" ".join(h.inner_text().split()[:2]) for h in headers.all()
               if (b := h.bounding_box()) and b["y"] < page.viewport_size["height"]]
    cards = page.get_by_test_id("experiment-view-compare-runs-card").locator("h4").all()
    first = [c.inner_text() for c in cards if (b := c.bounding_box()) and b["y"] < 1000]
    check("run page Model metrics tab", bool(sections),
          f"sections in order {sections}; first screen: sections {in_view}, charts {first}; "
          f"loss curves (train/val) on the first screen: "
          f"{any(s.startswith(('train', 'val')) for s in in_view)}")


def step(name: str, page: Page, out: Path, fn, *args) -> None:
    """Run one check; a step that cannot run (a timeout, a missing element) is a failed check."""
    try:
        fn(page, *args)
    except Exception as err:
        page.screenshot(path=out / f"error-{name.replace(' ', '-')}.png")
        lines = [line.strip() for line in str(err).splitlines()]
        check(name, False, f"could not run: {type(err).__name__}: {' '.join(lines[:3])}")


def run_checks(url: str, out: Path, experiment: str) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        page.get_by_role("link", name=experiment, exact=True).first.click()
        layout(page, "landing page of a fresh browser", out / "1-landing.png")
        exp_id = re.search(r"/experiments/(\d+)", page.url)[1]
        page.get_by_role("button", name="Model training", exact=True).click()
        if layout(page, "after the 'Model training' toggle", out / "1-landing-model-training.png"):
            step("saved view", page, out, check_saved_view, out)
            step("compare view", page, out, check_compare, out)
            step("run page", page, out, check_run_page, out)
        # README's other way in: a link with ?workflowType=machine_learning, in a fresh browser
        page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
        page.goto(f"{url}/#/experiments/{exp_id}?workflowType=machine_learning")
        if layout(page, "README link ?workflowType=machine_learning", out / "7-link.png"):
            choose_view(page, VIEWS[0])
            layout(page, f"README link, then saved view '{VIEWS[0]}'", out / "7-link-view.png")
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("ui-check"))
    parser.add_argument("--store", help="tracking URI, e.g. sqlite:///mlflow.db (default: log a "
                        "small sweep with pvf in a temp folder)")
    parser.add_argument("--experiment", default="intent_sample")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="pvf-ui-") as tmp:
        store = args.store or make_store(Path(tmp))
        server, url = start_server(store, args.out / "mlflow-server.log")
        try:
            run_checks(url, args.out, args.experiment)
        except Exception as err:  # a step that could not run is a failed check, not a traceback
            check("browser session", False, f"{type(err).__name__}: {str(err).splitlines()[0]}")
        finally:
            stop_server(server)
    failed = [name for name, ok, _ in results if not ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed in {time.time() - start:.0f} s;"
          f" screenshots in {args.out.resolve()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
