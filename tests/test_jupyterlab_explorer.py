"""The explorer chapter as a reader uses it: opened in the project's own JupyterLab, in headless Chromium.

The test copies ``notebooks/07_explore.ipynb`` with the ``smoke`` parameters of ``notebooks/profiles.yml``
(papermill, ``prepare_only``: nothing is executed) into a temporary root folder, starts
``sys.executable -m jupyter lab`` on a free port of 127.0.0.1 (a token, temporary Jupyter config, data,
runtime, settings and workspace folders, no news), opens the notebook in headless Chromium through
Selenium, checks that its kernel is this interpreter's ``python3``, runs all cells from the *Run* menu,
waits for the explorer's widgets, moves the *a* slider with the keyboard and checks that the pattern
figure and the cosine similarity of the read-out change.

The widgets are found by the CSS classes that :class:`xrdnb.explore.Explorer` gives them
(``xrdnb-readout``, ``xrdnb-pattern``, ``xrdnb-slider-a``, …). On failure, a screenshot, the browser's
console log and JupyterLab's log are saved under the test's ``tmp_path`` and named in the message.

Needs Chromium and ChromeDriver (``/usr/bin/chromium``, ``/usr/bin/chromedriver``, or on ``PATH``, or the
``CHROMIUM`` / ``CHROMEDRIVER`` environment variables, as ``tools/check_pages.py``), selenium, JupyterLab
and papermill; skipped, with the reason, without them (``.ci/run`` installs the browser).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import math
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "notebooks" / "07_explore.ipynb"
PROFILE = "smoke"

# The flags of tools/check_pages.py (required on CI and in this sandbox: root, no GPU, offline), in a
# wider window for JupyterLab's side panels.
_spec = importlib.util.spec_from_file_location("check_pages", ROOT / "tools" / "check_pages.py")
_check_pages = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("check_pages", _check_pages)  # dataclasses look their module up there
_spec.loader.exec_module(_check_pages)
CHROMIUM_FLAGS = tuple(f for f in _check_pages.CHROMIUM_FLAGS if not f.startswith("--window-size")) + (
    "--window-size=1400,1000",
)

SERVER_START_S = 60  # JupyterLab answers /api/status
PAGE_S = 60  # the notebook is open and its kernel idle
RUN_ALL_S = 120  # every cell has run (the smoke profile: some 10-20 s on two cores)
MOVE_S = 60  # the figure and the read-out follow the slider


def _find(env: str, default: str, *names: str) -> str | None:
    """A browser executable: the environment variable, else ``default`` if it exists, else on ``PATH``."""
    if os.environ.get(env):
        return os.environ[env] if Path(os.environ[env]).is_file() else None
    if Path(default).is_file():
        return default
    return next((found for name in names if (found := shutil.which(name))), None)


CHROMIUM = _find("CHROMIUM", "/usr/bin/chromium", "chromium", "chromium-browser")
CHROMEDRIVER = _find("CHROMEDRIVER", "/usr/bin/chromedriver", "chromedriver")
_missing = [name for name, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)) if path is None]
_missing += [f"the {m} package" for m in ("selenium", "jupyterlab", "papermill") if importlib.util.find_spec(m) is None]
pytestmark = [
    pytest.mark.skipif(
        bool(_missing),
        reason=f"the JupyterLab explorer test needs {', '.join(_missing)} "
        "(apt-get install chromium chromium-driver; pip install -e '.[book,test]')",
    ),
    pytest.mark.slow,
    pytest.mark.timeout(300),
]


# ---------------------------------------------------------------------------------------------- JupyterLab


class Lab:
    """A running ``jupyter lab``: its process, base URL, token, root folder and log file."""

    def __init__(self, proc: subprocess.Popen, url: str, token: str, root: Path, log: Path):
        self.proc, self.url, self.token, self.root, self.log = proc, url, token, root, log

    def api(self, path: str, method: str = "GET"):
        """JSON answer of the server's REST API at ``path`` (e.g. ``/api/sessions``)."""
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, n: int = 40) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(lines[-n:])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare_notebook(root: Path) -> Path:
    """The chapter with the smoke profile's parameters injected (not run), in ``root``."""
    import papermill

    profiles = yaml.safe_load((ROOT / "notebooks" / "profiles.yml").read_text())
    parameters = profiles[PROFILE].get(CHAPTER.stem, {})
    target = root / CHAPTER.name
    papermill.execute_notebook(
        str(CHAPTER), str(target), parameters=parameters, prepare_only=True, kernel_name="python3", progress_bar=False
    )
    notebook = json.loads(target.read_text())
    for cell in notebook["cells"]:  # a fresh notebook: "all cells ran" is read off the execution counts
        if cell["cell_type"] == "code":
            cell["execution_count"], cell["outputs"] = None, []
    assert any("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in notebook["cells"]), target
    target.write_text(json.dumps(notebook, indent=1))
    return target


def _lab_environment(home: Path) -> dict[str, str]:
    """Environment with fresh Jupyter/IPython folders, so that the user's settings and workspaces play no part."""
    env = dict(os.environ)
    for var in ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "JUPYTER_PREFER_ENV_PATH", "JUPYTER_PLATFORM_DIRS"):
        env.pop(var, None)
    folders = {
        "JUPYTER_CONFIG_DIR": "config",
        "JUPYTER_DATA_DIR": "data",
        "JUPYTER_RUNTIME_DIR": "runtime",
        "JUPYTERLAB_SETTINGS_DIR": "settings",
        "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
        "IPYTHONDIR": "ipython",
    }
    for var, name in folders.items():
        (home / name).mkdir(parents=True, exist_ok=True)
        env[var] = str(home / name)
    settings = home / "settings" / "@jupyterlab"
    overrides = {
        # every cell in the DOM (no virtual scrolling), so that the explorer's output is there to read
        "notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        # no "would you like to receive news?" toast, no update check
        "apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    }
    for name, value in overrides.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(value))
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # the debugger's warning about frozen modules
    env["XRDNB_PROFILE"] = PROFILE
    return env


def _start_lab(root: Path, home: Path, log: Path) -> tuple[subprocess.Popen, str, str]:
    token = secrets.token_hex(16)
    env = _lab_environment(home)
    for _attempt in range(3):  # the free port may be taken between the check and the server's bind
        port = _free_port()
        cmd = [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.terminals_enabled=False",
            "--ServerApp.allow_root=True",  # CI runs as root
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        with log.open("ab") as out:
            proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        end = time.monotonic() + SERVER_START_S
        while time.monotonic() < end and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as response:
                    if response.status == 200:
                        return proc, url, token
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.3)
        _stop(proc, url, token)
        if "already in use" not in log.read_text(errors="replace"):
            break
    raise RuntimeError(f"JupyterLab did not start; its log ({log}):\n{log.read_text(errors='replace')[-3000:]}")


def _stop(proc: subprocess.Popen, url: str, token: str) -> None:
    """Stop the server and its kernels: shut down through the API, then terminate, then kill what is left."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if proc.poll() is None:
        with contextlib.suppress(Exception):  # POST /api/shutdown stops the kernels, then the server
            request = urllib.request.Request(
                f"{url}/api/shutdown", method="POST", headers={"Authorization": f"token {token}"}
            )
            urllib.request.urlopen(request, timeout=10).close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    for child in children:  # kernels that outlived their server
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=5)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


@pytest.fixture
def lab(tmp_path, request):
    root, home = tmp_path / "root", tmp_path / "jupyter"
    root.mkdir()
    _prepare_notebook(root)
    proc, url, token = _start_lab(root, home, tmp_path / "jupyterlab.log")
    request.addfinalizer(lambda: _stop(proc, url, token))
    return Lab(proc, url, token, root, tmp_path / "jupyterlab.log")


@pytest.fixture
def browser(tmp_path, request):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    request.addfinalizer(driver.quit)
    driver.set_page_load_timeout(PAGE_S)
    return driver


# ---------------------------------------------------------------------------------------------- the page

_DIALOG_JS = """
// Answer JupyterLab's dialogs: a kernel choice is accepted (the notebook's python3 is preselected);
// anything else ("build recommended", ...) is dismissed. Returns the titles of the dialogs answered.
const answered = [];
for (const dialog of document.querySelectorAll('.jp-Dialog')) {
  const title = (dialog.querySelector('.jp-Dialog-header') || dialog).textContent.trim();
  const kernel = dialog.querySelector('select') !== null || /kernel/i.test(title);
  const button = dialog.querySelector(kernel ? '.jp-mod-accept' : '.jp-mod-reject')
                 || dialog.querySelector('.jp-Dialog-button');
  if (button) { button.click(); answered.push(title); }
}
return answered;
"""

_PROMPTS_JS = """
return Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt'))
            .map(p => p.textContent.trim());
"""

_READOUT_JS = """
const el = document.querySelector('.jp-NotebookPanel .xrdnb-readout');
if (!el) { return null; }
return Array.from(el.querySelectorAll('tr')).map(tr => Array.from(tr.cells).map(td => td.textContent.trim()));
"""

_IMAGE_JS = """
// The pixels of the explorer's pattern figure (the PNG an ipywidgets.Image shows through a blob: URL).
const img = document.querySelector('.jp-NotebookPanel img.xrdnb-pattern');
if (!img || !img.complete || !img.naturalWidth) { return null; }
const canvas = document.createElement('canvas');
canvas.width = img.naturalWidth;
canvas.height = img.naturalHeight;
canvas.getContext('2d').drawImage(img, 0, 0);
return {src: img.src, width: img.naturalWidth, height: img.naturalHeight, data: canvas.toDataURL('image/png')};
"""

_ERRORS_JS = """
return Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-OutputArea-output'))
            .map(o => o.textContent).filter(t => /Traceback|Error:/.test(t)).map(t => t.slice(0, 2000));
"""


def _similarities(driver) -> dict[str, float] | None:
    """The read-out's similarities, ``{label: value}``; ``None`` until it is shown with numbers."""
    rows = driver.execute_script(_READOUT_JS)
    if not rows:
        return None
    values = {}
    for row in rows:
        if len(row) == 2:
            with contextlib.suppress(ValueError):
                values[row[0]] = float(row[1])
    return values or None


def _figure(driver) -> tuple[str, int, int] | None:
    """``(sha256 of the pixels as PNG, width, height)`` of the pattern figure, ``None`` until it is drawn."""
    image = driver.execute_script(_IMAGE_JS)
    if not image:
        return None
    return hashlib.sha256(image["data"].encode()).hexdigest(), image["width"], image["height"]


def _click_menu(driver, menu: str, label: str) -> None:
    """Open the menu bar's ``menu`` and click its entry ``label``, as a reader does."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 20)
    bar = f"//li[contains(@class, 'lm-MenuBar-item')][.//*[normalize-space(text())='{menu}']]"
    entry = (
        "//div[contains(@class, 'lm-Menu')]//li[contains(@class, 'lm-Menu-item')]"
        f"[.//div[contains(@class, 'lm-Menu-itemLabel') and normalize-space(text())='{label}']]"
    )
    try:
        wait.until(ec.element_to_be_clickable((By.XPATH, bar))).click()
        wait.until(ec.element_to_be_clickable((By.XPATH, entry))).click()
    except TimeoutException:
        raise AssertionError(f"no menu entry {menu} → {label} to click") from None


@contextlib.contextmanager
def _evidence(driver, lab: Lab, tmp_path: Path):
    """On failure, save a screenshot and the console log and name them (with JupyterLab's log) in the message."""
    try:
        yield
    except Exception as exc:
        screenshot, console = tmp_path / "jupyterlab-explorer.png", tmp_path / "browser-console.log"
        with contextlib.suppress(Exception):
            driver.save_screenshot(str(screenshot))
        with contextlib.suppress(Exception):
            console.write_text("\n".join(json.dumps(entry) for entry in driver.get_log("browser")) + "\n")
        raise AssertionError(
            f"{exc}\nscreenshot: {screenshot}\nbrowser console: {console}\n"
            f"JupyterLab log: {lab.log} (last lines below)\n{lab.log_tail()}"
        ) from exc


def _wait(driver, predicate, timeout: float, what: str):
    """``predicate(driver)`` once it is true (answering dialogs meanwhile); fails saying ``what`` did not happen."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    def check(d):
        d.execute_script(_DIALOG_JS)
        return predicate(d)

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.25).until(check)
    except TimeoutException:
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}") from None


# ---------------------------------------------------------------------------------------------- the test


def test_explorer_in_jupyterlab(lab, browser, tmp_path):
    import psutil
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = browser
    name = CHAPTER.name
    with _evidence(driver, lab, tmp_path):
        driver.get(f"{lab.url}/lab/tree/{name}?token={lab.token}")

        # ---- the notebook is open, with a kernel of its own session, idle: the venv's python3
        def session_kernel(_d):
            sessions = [s for s in lab.api("/api/sessions") if s.get("path") == name]
            kernel = sessions[0]["kernel"] if sessions else None
            return kernel if kernel and kernel.get("execution_state") == "idle" else None

        _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Cell"), PAGE_S, "the notebook")
        kernel = _wait(driver, session_kernel, PAGE_S, "the notebook's kernel to start and become idle")
        assert kernel["name"] == "python3", kernel
        kernels = [
            p for p in psutil.Process(lab.proc.pid).children(recursive=True) if "ipykernel_launcher" in p.cmdline()
        ]
        assert len(kernels) == 1, [p.cmdline() for p in kernels]
        assert os.path.samefile(kernels[0].cmdline()[0], sys.executable), kernels[0].cmdline()
        spec = lab.api("/api/kernelspecs")["kernelspecs"]["python3"]["spec"]
        assert spec["argv"][0] in ("python", "python3", sys.executable), spec  # jupyter_client runs sys.executable

        # ---- Run → Run All Cells; every code cell gets its execution count, none fails
        n_code = len(driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-CodeCell"))
        _click_menu(driver, "Run", "Run All Cells")

        def all_ran(d):
            prompts = d.execute_script(_PROMPTS_JS)
            done = len(prompts) == n_code and all(p.strip("[]:").isdigit() for p in prompts)
            return done and session_kernel(d) is not None

        _wait(driver, all_ran, RUN_ALL_S, f"all {n_code} code cells to run")
        errors = driver.execute_script(_ERRORS_JS)
        assert not errors, "a cell failed:\n" + "\n---\n".join(errors)

        # ---- the explorer's widgets are there: figure, read-out, slider
        _wait(driver, _figure, PAGE_S, "the explorer's pattern figure")
        _wait(driver, _similarities, PAGE_S, "the explorer's similarity read-out")
        before_figure, before = _figure(driver), _similarities(driver)
        assert "cosine" in before and math.isfinite(before["cosine"]), before
        handle = driver.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel .xrdnb-slider-a .noUi-handle")
        readout = driver.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel .xrdnb-slider-a .widget-readout")
        a_before = float(readout.text)

        # ---- move the a slider: focus its handle and press → ten times (10 × 0.001 Å)
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus();", handle)
        for _ in range(10):
            handle.send_keys(Keys.ARROW_RIGHT)
        _wait(driver, lambda d: float(readout.text) > a_before, MOVE_S, "the a slider to move")

        def followed(d):
            figure, now = _figure(d), _similarities(d)
            changed = figure and now and figure[0] != before_figure[0] and now.get("cosine") != before["cosine"]
            return (figure, now) if changed and session_kernel(d) is not None else None

        after_figure, after = _wait(driver, followed, MOVE_S, "the figure and the similarity read-out to change")
        assert float(readout.text) > a_before
        assert after_figure[0] != before_figure[0], "the pattern figure did not change"
        assert math.isfinite(after["cosine"]) and after["cosine"] != before["cosine"], (before, after)
        assert set(after) == set(before), (before, after)
        print(
            f"a {a_before:.3f} -> {float(readout.text):.3f} Å; "
            f"cosine {before['cosine']:+.5f} -> {after['cosine']:+.5f}; "
            f"pattern figure {before_figure[0][:12]} -> {after_figure[0][:12]} ({after_figure[1]}x{after_figure[2]} px)"
        )
