"""Check in a real headless browser what a user sees of pvf's experiment in the MLflow UI.

pvf tags each experiment `mlflow.experimentKind=custom_model_development` (so that MLflow 3
opens it on the runs table, not on its GenAI pages), stores two saved views of the runs table
(`pvf: compare runs`, `pvf: mean over seeds`) and rounds the fractions it logs to 4 significant
digits. Only a browser shows whether the UI honours that: this script opens the UI the way a
user does, saves a PNG screenshot before each assertion, prints one PASS/FAIL line per check
and exits 1 when one fails.

Setup, once (Debian; never `playwright install`: it downloads a browser of its own):
    apt-get install -y chromium              # the browser, /usr/bin/chromium
    pip install playwright                   # its Python driver only
Run, in the project's virtualenv:
    python scripts/check_mlflow_ui.py [--out DIR] [--store sqlite:///path/mlflow.db]
Without --store it first logs a small sweep with pvf in a temp folder (about a minute on 2 CPU
cores). Screenshots go to --out (default ./ui-check/).
"""

import argparse
import contextlib
import os
import re
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
WANTED = ["test/accuracy", "cost/usd_per_1k_predictions"]  # in sight without scrolling right
GENAI_NAV = {"Sessions", "Judges", "Evaluation runs", "Evaluations", "Review"}  # GenAI pages only
SCREEN = {"width": 1600, "height": 1000}
WAIT_MS = 60_000
BIN = Path(sys.executable).parent
results: list[tuple[str, bool]] = []


def check(name: str, ok: bool, seen: str) -> bool:
    results.append((name, ok))
    print(f"{'PASS' if ok else 'FAIL'} {name}: {seen}", flush=True)
    return ok


def make_store(folder: Path) -> str:
    """Log a small sweep with pvf into folder/mlflow.db."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    print(f"logging a sweep with pvf in {folder} ...", flush=True)
    with open(folder / "pvf.log", "w") as log:
        subprocess.run([BIN / "pvf", *SWEEP], cwd=folder, stdout=log, stderr=log,
                       env=env | {"HF_HUB_OFFLINE": "1"}, check=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


@contextlib.contextmanager
def mlflow_server(store: str, log_path: Path):
    """`mlflow server` on a free port, stopped on exit (one worker, no job runner: light)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cwd = Path(store.removeprefix("sqlite:///")).parent if store.startswith("sqlite:///") else None
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [BIN / "mlflow", "server", "--backend-store-uri", store, "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"], cwd=cwd, stdout=log, stderr=log, env=env,
            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(180):  # seconds
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(url + "/health", timeout=2).status == 200:
                    break
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server stopped; see {log_path}")
            time.sleep(1)
        else:
            raise RuntimeError(f"mlflow server did not answer on {url}/health; see {log_path}")
        yield url
    finally:  # the server and its workers: the process group it leads
        with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


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
    """GenAI-only entries of the side bar (CSS, not roles: a tip's modal hides them from roles)."""
    return GENAI_NAV & {line.strip() for nav in page.locator("nav").all_inner_texts()
                        for line in nav.splitlines()}


def layout(page: Page, name: str, shot: Path, why: str = "") -> bool:
    """The runs table is shown and the GenAI navigation is not (`why`: the likely cause if not)."""
    until(page, lambda: runs_table(page) or bool(genai_nav(page)))
    page.screenshot(path=shot)
    table, genai = runs_table(page), genai_nav(page)
    for button in ("Got it", "Close"):  # a first visit's feature tip and MLflow Assistant panel
        if (b := page.get_by_role("button", name=button, exact=True).first).is_visible():
            b.click()
    ok = table and not genai
    seen = f"{'runs table' if table else 'no runs table'}; GenAI nav: {sorted(genai) or 'none'}"
    return check(name, ok, f"{seen}; #{page.url.split('#')[-1][:80]}" + ("" if ok else why))


def sig_digits(text: str) -> int:
    """Significant digits of a displayed fraction (0 for integers and non-numbers)."""
    m = re.fullmatch(r"-?(\d*)\.(\d+)(?:e[-+]?\d+)?|-?(\d+)()e[-+]?\d+", text.strip(), re.I)
    return len("".join(g or "" for g in m.groups()).lstrip("0")) if m else 0


def unrounded(texts: list[str]) -> list[str]:
    return sorted({t for t in texts if sig_digits(t) > 4})


def open_views_menu(page: Page) -> list[str]:
    trigger = page.get_by_test_id("saved-views-trigger")
    (trigger if trigger.count() else page.get_by_role("button", name="Views")).first.click()
    until(page, lambda: page.get_by_role("menuitem").count() > 0, 15_000)
    return [" ".join(t.split()) for t in page.get_by_role("menuitem").all_inner_texts()]


def choose_view(page: Page, view: str, listed: list[str] | None = None) -> bool:
    if view not in (listed or open_views_menu(page)):
        return False
    page.get_by_role("menuitem", name=view).first.click()
    return until(page, lambda: "viewStateShareKey" in page.url and runs_table(page))


def check_saved_view(page: Page, out: Path) -> None:
    listed = open_views_menu(page)
    page.screenshot(path=out / "2-views-menu.png")
    check("b. views menu", all(v in listed for v in VIEWS), f"lists {listed}")
    chosen = choose_view(page, VIEWS[0], listed)
    if not layout(page, f"b. saved view '{VIEWS[0]}'", out / "3-saved-view.png"):
        return
    area = page.locator(".ag-center-cols-viewport").first.bounding_box()
    right = min(area["x"] + area["width"], SCREEN["width"])
    boxes = sorted(((h.get_attribute("col-id").split("`")[1], h.bounding_box()) for h in
                    page.locator(".ag-header-cell[col-id^='metrics.']").all()),
                   key=lambda kb: kb[1]["x"])  # metric columns, left to right
    seen = {k: any(key == k and b["x"] + b["width"] <= right + 1 for key, b in boxes)
            for k in WANTED}
    check("b. quality and cost columns in sight without scrolling right",
          chosen and seen[WANTED[0]],
          f"in sight: {[k for k, ok in seen.items() if ok]}, cut off or absent: "
          f"{[k for k, ok in seen.items() if not ok]}; table's right edge x{right:.0f}; metric "
          f"columns from x{boxes[0][1]['x'] if boxes else 0:.0f}: {[k for k, _ in boxes]}")
    cells = page.locator(".ag-cell[col-id^='metrics.']").all_inner_texts()
    check("b. values rounded to <= 4 significant digits", bool(cells) and not unrounded(cells),
          f"{len(cells)} metric cells; over 4 digits: {unrounded(cells) or 'none'}")


def check_compare(page: Page, out: Path) -> None:
    boxes = page.get_by_role("checkbox", name=re.compile("toggle row selection")).all()
    boxes[0].check()  # the view's best run and its worst
    boxes[-1].check()
    page.get_by_role("button", name="Compare", exact=True).click()
    until(page, lambda: page.get_by_text("Comparing 2 Runs").count() > 0)
    page.screenshot(path=out / "4-compare.png")
    heading = page.get_by_text("Metrics", exact=True).last
    y = heading.bounding_box()["y"]  # before scrolling
    heading.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    page.screenshot(path=out / "4-compare-metrics.png")
    section = heading.locator("xpath=ancestor::div[contains(@class,'collapse-item')][1]")
    names = section.locator("a[title='Plot chart']").all_inner_texts()
    values = section.locator("[role=grid]").last.inner_text().split()
    check("c. compare view of 2 runs", page.get_by_text("Comparing 2 Runs").count() > 0,
          f"Metrics table at y={y:.0f} (window {SCREEN['height']}px), rows A-Z from {names[:3]}; "
          f"test/* rows shown without scrolling that table: "
          f"{[n for n in names if n.startswith('test/')] or 'none'}; values over 4 digits: "
          f"{unrounded(values) or 'none'}")


def check_run_page(page: Page, out: Path) -> None:
    page.go_back()
    until(page, lambda: runs_table(page))
    if "viewStateShareKey" not in page.url:  # the view lists job runs only, best first
        choose_view(page, VIEWS[0])
    link = page.locator(".ag-cell[col-id='attributes.`Run Name`'] a").first
    run_name = link.inner_text()
    link.click()
    tab = page.get_by_role("tab", name="Model metrics")
    until(page, lambda: tab.count() > 0)
    page.screenshot(path=out / "5-run-overview.png")
    table = page.get_by_role("table").filter(
        has=page.get_by_role("columnheader").filter(has_text=re.compile(r"^Metric$")))
    rows = [r.split("\n") for r in table.get_by_role("row").all_inner_texts()]
    long = [f"{r[0]}={r[-1]}" for r in rows if len(r) > 1 and sig_digits(r[-1]) > 4
            and not r[0].startswith("system/")]  # MLflow's own system metrics
    check("d. run page", tab.count() > 0, f"'{run_name}', Overview's Metrics table of "
          f"{len(rows)} rows; over 4 digits: {long or 'none'}")
    tab.click()
    headers = page.get_by_test_id("experiment-view-compare-runs-section-header")
    until(page, lambda: headers.count() > 0)
    page.screenshot(path=out / "6-run-model-metrics.png")
    in_sight = lambda loc: (b := loc.bounding_box()) and b["y"] < SCREEN["height"]  # noqa: E731
    sections = [" ".join(h.inner_text().split()[:2]) for h in headers.all()]
    first = [s for s, h in zip(sections, headers.all(), strict=True) if in_sight(h)]
    charts = [c.inner_text() for c in page.get_by_test_id("experiment-view-compare-runs-card")
              .locator("h4").all() if in_sight(c)]
    check("d. run page, Model metrics tab", bool(sections),
          f"sections {sections}; first screen: {first}, charts {charts}; loss curves on it: "
          f"{any(s.startswith(('train', 'val')) for s in first)}")


def step(name: str, page: Page, out: Path, fn) -> None:
    """Run one check; a step that cannot run (a timeout, a missing element) is a failed check."""
    try:
        fn(page, out)
    except Exception as err:
        page.screenshot(path=out / f"error-{name.replace(' ', '-')}.png")
        lines = [line.strip() for line in str(err).splitlines()]
        check(name, False, f"could not run: {type(err).__name__}: {' '.join(lines[:3])}")


def fresh_page(browser) -> Page:
    """A page in a new, empty profile: a user's first visit."""
    page = browser.new_context(viewport=SCREEN).new_page()
    page.set_default_timeout(WAIT_MS)
    return page


def run_checks(url: str, out: Path, experiment: str) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = fresh_page(browser)
        page.goto(url)
        page.get_by_role("link", name=experiment, exact=True).first.click()
        layout(page, "a. experiment opened from the home page", out / "1-landing.png",
               " (MLflow 3.17 opens the page of the side bar's GenAI/Model training toggle, "
               "GenAI by default, and does not read mlflow.experimentKind)")
        exp_id = re.search(r"/experiments/(\d+)", page.url)[1]
        page.get_by_role("button", name="Model training", exact=True).click()
        if layout(page, "a. after the side bar's 'Model training' toggle", out / "1-toggle.png"):
            step("b. saved view", page, out, check_saved_view)
            step("c. compare view", page, out, check_compare)
            step("d. run page", page, out, check_run_page)
        # the README's other way in, in a fresh profile: a link with ?workflowType=...
        page = fresh_page(browser)
        page.goto(f"{url}/#/experiments/{exp_id}?workflowType=machine_learning")
        if layout(page, "e. README's link ?workflowType=machine_learning", out / "7-link.png"):
            choose_view(page, VIEWS[0])
            layout(page, f"e. that link, then saved view '{VIEWS[0]}'", out / "7-link-view.png",
                   " (the view's address drops workflowType: the page falls back to GenAI)")
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("ui-check"), help="screenshots")
    parser.add_argument("--store", help="tracking URI, e.g. sqlite:///mlflow.db (default: log "
                        "a small sweep with pvf in a temp folder)")
    parser.add_argument("--experiment", default="intent_sample")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("error-*.png"):  # from an earlier run
        old.unlink()
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="pvf-ui-") as tmp:
        store = args.store or make_store(Path(tmp))
        with mlflow_server(store, args.out / "mlflow-server.log") as url:
            try:
                run_checks(url, args.out, args.experiment)
            except Exception as err:  # a session that could not go on is a failed check
                check("browser", False, f"{type(err).__name__}: {str(err).splitlines()[0]}")
    failed = [name for name, ok in results if not ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed in "
          f"{time.time() - start:.0f} s; screenshots in {args.out.resolve()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
