"""The explorer in a real browser: JupyterLab started here, headless Chromium, `nbs/runs/explore.ipynb` run, a slider moved.

Starts `jupyter-lab` on 127.0.0.1 with a random token and temporary settings/workspace folders (a settings override
silences the news toast), opens a copy of `nbs/runs/explore.ipynb` in headless Chromium (Debian's `/usr/bin/chromium`
driven by the Python `playwright` package), runs all cells, moves the trajectory explorer's step slider with the
keyboard and checks that the figure changed (element screenshots before/after). Then it times scrubbing the recorded
2D trajectory (500 chains x 200 steps): ArrowRight on the slider, wait until the new frame is in the page, repeat.
The median must stay under `LEBM_SCRUB_MAX_MS` (default 200 ms). `LEBM_SCRUB_REPORT=/path.json` keeps the numbers,
`LEBM_EXPLORE_RENDER=inline` measures the inline-backend rendering instead. The server is stopped with SIGTERM.
"""
import os, re, sys, json, time, shutil, signal, socket, secrets, statistics, subprocess, urllib.request
from pathlib import Path

import pytest, nbformat

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
                 '--disable-component-update', '--no-first-run', '--disable-sync']
OVERRIDES = {'@jupyterlab/apputils-extension:notification': {'fetchNews': 'false', 'checkForUpdates': False}}
N_SCRUB = 25
IMG = 'img.lebm-view' if os.environ.get('LEBM_EXPLORE_RENDER', 'image') == 'image' else '.lebm-view-inline img'


def _free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def _wait_http(url: str, timeout: float, proc):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None: raise RuntimeError(f'jupyter-lab exited with {proc.returncode}')
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200: return
        except OSError: pass
        time.sleep(0.5)
    raise TimeoutError(f'{url} did not answer in {timeout} s')


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    "A jupyter-lab server on 127.0.0.1 serving a temporary folder with a copy of the explore notebook."
    exe = Path(sys.executable).with_name('jupyter-lab')
    if not exe.exists(): pytest.skip(f'{exe} missing (pip install jupyterlab)')
    tmp = tmp_path_factory.mktemp('lab')
    work, settings = tmp/'work', tmp/'app_settings'
    work.mkdir(); settings.mkdir()
    (settings/'overrides.json').write_text(json.dumps(OVERRIDES))
    nb = nbformat.read(ROOT/'nbs'/'runs'/'explore.ipynb', as_version=4)
    render = os.environ.get('LEBM_EXPLORE_RENDER')
    if render:
        p = next(c for c in nb.cells if 'parameters' in c.metadata.get('tags', []))
        p.source = re.sub(r"^render: str = '\w+'", f"render: str = {render!r}", p.source, flags=re.M)
    nbformat.write(nb, work/'explore.ipynb')
    token, port = secrets.token_hex(16), _free_port()
    env = dict(os.environ, OMP_NUM_THREADS='1', JUPYTERLAB_SETTINGS_DIR=str(tmp/'user_settings'),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp/'workspaces'), JUPYTER_RUNTIME_DIR=str(tmp/'runtime'),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    log = open(tmp/'lab.log', 'w')
    proc = subprocess.Popen([str(exe), '--allow-root', '--no-browser', '--ip', '127.0.0.1', f'--port={port}',
                             f'--ServerApp.token={token}', f'--ServerApp.root_dir={work}',
                             f'--LabApp.app_settings_dir={settings}', '--ServerApp.open_browser=False'],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
    try:
        _wait_http(f'http://127.0.0.1:{port}/api/status?token={token}', 90, proc)
        yield dict(url=f'http://127.0.0.1:{port}', token=token, work=work, log=tmp/'lab.log')
    finally:
        proc.send_signal(signal.SIGTERM)   # jupyter-lab shuts its kernels down on SIGTERM
        try: proc.wait(30)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait(10)
        log.close()


def _all_executed(page) -> bool:
    prompts = page.eval_on_selector_all('.jp-CodeCell .jp-InputPrompt', 'els => els.map(e => e.textContent.trim())')
    return bool(prompts) and all(re.fullmatch(r'\[\d+\]:', p) for p in prompts)


def _run_all(page, tries: int = 4, timeout: float = 150):
    "Run all cells; on a cold server the first Run All sometimes runs nothing, so retry until every prompt is [n]."
    for attempt in range(tries):
        page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=60_000)
        page.wait_for_timeout(2000)
        page.click('.lm-MenuBar-itemLabel:text-is("Run")')
        page.click('.lm-Menu-itemLabel:text-is("Run All Cells")')
        t0 = time.time()
        while time.time() - t0 < timeout:
            page.wait_for_timeout(1000)
            busy = page.query_selector('.jp-Notebook-ExecutionIndicator[data-status="busy"]')
            if not busy and _all_executed(page): return attempt
            if not busy and time.time() - t0 > 10 and not page.query_selector('.jp-InputPrompt:text-is("[*]:")'):
                break      # idle with cells not run: the Run All was lost, try again
        errors = page.eval_on_selector_all('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]',
                                           'els => els.map(e => e.textContent)')
        tb = [e for e in errors if 'Traceback' in e or 'Error' in e]
        if tb: raise AssertionError(f'the explore notebook failed: {tb[0][-2000:]}')
    raise TimeoutError('Run All did not execute every cell')


@pytest.fixture(scope='module')
def notebook(lab):
    "The explore notebook open in headless Chromium, all cells run."
    if not Path(CHROMIUM).exists(): pytest.skip(f'{CHROMIUM} missing (Debian: apt-get install -y chromium)')
    sync_api = pytest.importorskip('playwright.sync_api')
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={'width': 1400, 'height': 1000})
            page.set_default_timeout(60_000)
            page.goto(f"{lab['url']}/lab/tree/explore.ipynb?token={lab['token']}", wait_until='load')
            page.wait_for_selector('.jp-NotebookPanel .jp-CodeCell', timeout=90_000)
            retries = _run_all(page)
            page.wait_for_selector(IMG, state='visible', timeout=60_000)
            yield dict(page=page, retries=retries)
        finally:
            browser.close()


def _img_src(page) -> str: return page.eval_on_selector(IMG, 'e => e.src')


def _scrub_once(page, handle, expected: int):
    "ArrowRight on the slider; wait until the readout shows `expected` and a new frame is in the page."
    old = _img_src(page)
    t0 = time.perf_counter()
    handle.press('ArrowRight')
    page.wait_for_function('([old, k, sel]) => { const i = document.querySelector(sel);'
                           ' const r = document.querySelector(".lebm-step .widget-readout");'
                           ' return i && i.src !== old && i.complete && r && r.textContent.trim() === String(k); }',
                           arg=[old, expected, IMG], timeout=20_000)
    return time.perf_counter() - t0


def test_slider_changes_figure(notebook):
    page = notebook['page']
    view = page.locator(IMG).first
    view.scroll_into_view_if_needed()
    readout = page.locator('.lebm-step .widget-readout').first
    assert readout.inner_text().strip() == '0'
    before = view.screenshot()
    handle = page.locator('.lebm-step .noUi-handle').first
    handle.focus()
    _scrub_once(page, handle, 1)
    page.wait_for_timeout(300)
    after = view.screenshot()
    assert before != after, 'moving the step slider did not change the figure'


def test_scrub_time(notebook):
    page = notebook['page']
    handle = page.locator('.lebm-step .noUi-handle').first
    handle.focus()
    start = int(page.locator('.lebm-step .widget-readout').first.inner_text())
    _scrub_once(page, handle, start + 1)          # warm-up
    times = [_scrub_once(page, handle, start + 2 + i) for i in range(N_SCRUB)]
    ms = sorted(1e3*t for t in times)
    res = dict(render=os.environ.get('LEBM_EXPLORE_RENDER', 'image'), chains=500, steps=200, n=N_SCRUB,
               median_ms=statistics.median(ms), mean_ms=statistics.mean(ms), p90_ms=ms[int(0.9*len(ms)) - 1],
               max_ms=ms[-1], run_all_retries=notebook['retries'])
    print('scrub timing:', json.dumps(res))
    if os.environ.get('LEBM_SCRUB_REPORT'): Path(os.environ['LEBM_SCRUB_REPORT']).write_text(json.dumps(res, indent=2))
    limit = float(os.environ.get('LEBM_SCRUB_MAX_MS', 200))
    assert res['median_ms'] < limit, f"scrubbing takes {res['median_ms']:.0f} ms per step (limit {limit:.0f} ms)"
