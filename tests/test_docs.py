"""The docs site in a real browser, and the README generator.

Builds the offline site (`build_docs(quarto=False)`) once into a temporary folder, serves it on 127.0.0.1 and opens
the `00_core` page in headless Chromium (Debian's `/usr/bin/chromium`, driven by the Python `playwright` package):
sidebar in `_quarto.yml` order, a `show_doc` signature, math typeset by the bundled MathJax, and no request to any
other host. Set `LEBM_DOCS_SCREENSHOT=/path/page.png` to keep a screenshot of the page.
"""
import os, re, json, shutil, functools, threading, subprocess, http.server
from pathlib import Path
from urllib.parse import urlparse

import pytest, yaml, nbformat

from latent_ebm_nb.core import project_root
from latent_ebm_nb.docs import build_docs, write_readme, sidebar_pages, parse_frontmatter, page_name

ROOT = project_root(Path(__file__).parent)
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
                 '--disable-component-update', '--no-first-run', '--disable-sync']


def _processed_frontmatter(name):
    nb = nbformat.read(ROOT/'_proc'/name, as_version=4)
    return next((parse_frontmatter(c.source) or {} for c in nb.cells if c.cell_type == 'raw'), {})


def _expected_sidebar():
    "(section titles, page files) the sidebar must show, from the top-level _quarto.yml and nbdev's frontmatter."
    cfg = yaml.safe_load((ROOT/'_quarto.yml').read_text())
    sections = sidebar_pages(cfg, ROOT/'nbs')
    listed = {n for _, ns in sections for n in ns}
    other = [p.name for p in sorted((ROOT/'nbs').glob('*.ipynb')) if p.name not in listed and p.name[0] not in '_.']
    if other: sections.append(('Other', other))
    titles = [s for s, _ in sections if s]
    pages = [page_name(n, _processed_frontmatter(n)) for _, ns in sections for n in ns]
    return titles, pages


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    return build_docs(out=tmp_path_factory.mktemp('site'), root=ROOT, quarto=False)


def test_site_files(site):
    _, pages = _expected_sidebar()
    assert 'core.html' in pages
    for p in pages + ['index.html']: assert (site/p).is_file(), p
    assert (site/'mathjax'/'MathJax.js').is_file()
    assert (site/'mathjax'/'fonts'/'HTML-CSS'/'STIX-Web'/'woff').is_dir()
    for f in site.glob('*.html'):   # nothing is loaded from another host (links to GitHub are fine)
        loads = re.findall(r'<(?:script|link|img|iframe)\b[^>]*(?:src|href)="(https?:)?//', f.read_text())
        assert not loads, f"{f.name} loads from the network"


_PW = {}
def chromium():
    "The one Chromium of this test session (Playwright's sync API cannot start a second driver while one is open); skips without it."
    if not Path(CHROMIUM).exists(): pytest.skip(f'{CHROMIUM} missing (Debian: apt-get install -y chromium)')
    sync_api = pytest.importorskip('playwright.sync_api')
    if 'browser' not in _PW:
        _PW['pw'] = sync_api.sync_playwright().start()
        _PW['browser'] = _PW['pw'].chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    return _PW['browser']

def goto_typeset(page, url:str):
    "Load `url` and wait until MathJax has typeset the page."
    page.goto(url, wait_until='load')
    page.wait_for_function('() => window.MathJax && window.MathJax.isReady', timeout=30_000)
    page.evaluate('() => new Promise(done => MathJax.Hub.Queue(() => done(true)))')

def open_page(url:str):
    "A new Chromium page at `url`, typeset, with the lists of every request and every failed one it makes."
    requests, failures = [], []
    page = chromium().new_page(viewport={'width': 1280, 'height': 900})
    page.on('request', lambda r: requests.append(r.url))
    page.on('requestfailed', lambda r: urlparse(r.url).scheme != 'about' and failures.append(r.url))
    page.on('response', lambda r: r.status >= 400 and failures.append(r.url))
    goto_typeset(page, url)
    return page, requests, failures

@pytest.fixture(scope='module', autouse=True)
def _close_chromium():
    yield
    if 'browser' in _PW: _PW.pop('browser').close(); _PW.pop('pw').stop()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


@pytest.fixture(scope='module')
def server(site):
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{httpd.server_port}'
    httpd.shutdown(); httpd.server_close()


@pytest.fixture(scope='module')
def core_page(server, tmp_path_factory):
    "The core page after MathJax has finished, with every request and failed response it made."
    page, requests, failures = open_page(f'{server}/core.html')
    try:
        shot = os.environ.get('LEBM_DOCS_SCREENSHOT')
        if shot: page.screenshot(path=shot)
        yield dict(
            page=page, requests=requests, failures=failures,
            sidebar=page.eval_on_selector_all('#sidebar a.page', 'els => els.map(e => e.getAttribute("href"))'),
            sections=page.eval_on_selector_all('#sidebar .section', 'els => els.map(e => e.textContent.trim())'),
            text=page.inner_text('main'),
            prose=page.evaluate('''() => { const m = document.querySelector('main').cloneNode(true);
                m.querySelectorAll('pre, code, script, .highlight').forEach(e => e.remove());
                return m.textContent; }'''),
            n_math=page.eval_on_selector_all('span.MathJax, div.MathJax_Display', 'els => els.length'),
            n_tex=page.eval_on_selector_all('script[type^="math/tex"]', 'els => els.length'),
            n_errors=page.eval_on_selector_all('.MathJax_Error, [data-mjx-error], merror', 'els => els.length'),
            title=page.title())
    finally:
        page.close()


@pytest.mark.slow
def test_sidebar_order(core_page):
    titles, pages = _expected_sidebar()
    assert core_page['sidebar'] == pages
    assert core_page['sections'] == titles
    assert core_page['page'].eval_on_selector('#sidebar a.page.active', 'e => e.getAttribute("href")') == 'core.html'


@pytest.mark.slow
def test_page_content(core_page):
    text = core_page['text']
    assert core_page['title'].startswith('Core conventions')
    assert 'def langevin_step(' in text and 'def energy_grad(' in text   # show_doc signatures
    assert core_page['page'].locator('#langevin_step').count() == 1      # nbdev's doc links land on it
    assert '#|' not in text and 'Export -' not in text and 'nbdev_export' not in text
    assert 'from fastcore.test import' not in text                       # the #| hide cell is gone


@pytest.mark.slow
def test_math_typeset(core_page):
    assert core_page['n_tex'] >= 10, 'MathJax found no math on the page'
    assert core_page['n_math'] >= core_page['n_tex']
    assert core_page['n_errors'] == 0
    assert 'Math Processing Error' not in core_page['text']
    assert not re.search(r'\$\$?\\(frac|nabla)', core_page['prose']), 'raw TeX left outside code'


@pytest.mark.slow
def test_offline(core_page):
    hosts = {urlparse(u).hostname for u in core_page['requests'] if urlparse(u).scheme in ('http', 'https', 'ws', 'wss')}
    other = [u for u in core_page['requests'] if urlparse(u).scheme not in ('http', 'https', 'data', 'blob', 'about')]
    assert hosts == {'127.0.0.1'}, hosts
    assert not other, other
    # the hidden MathML for screen readers asks for MathJax's TeX fonts, which jupyter-server-mathjax does not ship
    # (the visible math uses its STIX-Web fonts): that 404 is expected, any other failure is not
    failures = [u for u in core_page['failures'] if '/mathjax/fonts/HTML-CSS/TeX/' not in u]
    assert not failures, failures
    assert any('/mathjax/fonts/HTML-CSS/STIX-Web/woff/' in u for u in core_page['requests']), 'web fonts not used'


_INDEX = [nbformat.v4.new_raw_cell('---\ntitle: demo_lib\ndescription: "A library, for the README test"\n---'),
          nbformat.v4.new_markdown_cell('Some text with math $E(z)$.\n\n## Usage'),
          nbformat.v4.new_code_cell('#| hide\nfrom fastcore.test import *'),
          nbformat.v4.new_code_cell('#| echo: false\nprint("only the output")', outputs=[
              nbformat.v4.new_output('stream', name='stdout', text='only the output\n')]),
          nbformat.v4.new_code_cell('1 + 1', outputs=[
              nbformat.v4.new_output('execute_result', {'text/plain': '2'}, execution_count=1),
              nbformat.v4.new_output('display_data', {'image/png': 'iVBORw0KGgo=', 'text/plain': '<Figure>'})]),
          nbformat.v4.new_markdown_cell('## Export -')]


@pytest.mark.parametrize('which', ['synthetic', 'project'])
def test_readme(tmp_path, which):
    "write_readme on a temporary copy of the project: deterministic, no directives, no frontmatter, no images."
    (tmp_path/'nbs').mkdir()
    for f in ('settings.ini', '_quarto.yml'): shutil.copy(ROOT/f, tmp_path/f)
    if which == 'project':
        if not (ROOT/'nbs'/'index.ipynb').exists(): pytest.skip('nbs/index.ipynb not written yet')
        shutil.copy(ROOT/'nbs'/'index.ipynb', tmp_path/'nbs'/'index.ipynb')
    else:
        nb = nbformat.v4.new_notebook(cells=_INDEX)
        nb.metadata = {'kernelspec': {'name': 'python3', 'language': 'python', 'display_name': 'python3'},
                       'language_info': {'name': 'python'}}
        nbformat.write(nb, tmp_path/'nbs'/'index.ipynb')
    p = write_readme(tmp_path)
    assert p == tmp_path/'README.md'
    md = p.read_text()
    assert write_readme(tmp_path).read_text() == md                     # deterministic
    assert md.startswith('# ') and md.endswith('\n') and not md.endswith('\n\n')
    assert not re.search(r'^\s*#\|', md, re.M), 'directive lines left in the README'
    assert not md.startswith('---') and 'output-file' not in md
    assert 'data:image' not in md and 'iVBOR' not in md
    if which == 'synthetic':
        assert md.startswith('# demo_lib\n\n> A library, for the README test\n\n')
        assert 'only the output' in md and 'print(' not in md and 'fastcore.test' not in md
        assert '```python\n1 + 1\n```' in md and '    2' in md and 'Export -' not in md


# --- references: every `.md` file the notebooks, the README or the site configuration name is in the repository ---

_MD_REF = re.compile(r'(?<![\w/.-])((?:\.{1,2}/|[\w-]+/)*[\w.-]+\.md)\b')
_OUTSIDE = re.compile(r'(?:\.\./)+shared/|shared/reference/|methods-[\w-]+\.md')


def _texts():
    "(file, cell label, text) for every cell of every notebook, README.md and _quarto.yml."
    for f in sorted([*(ROOT/'nbs').glob('*.ipynb'), *(ROOT/'nbs').glob('*/*.ipynb')]):
        for i, c in enumerate(nbformat.read(f, as_version=4).cells): yield f, f'cell {i}', c.source
    for name in ('README.md', '_quarto.yml'):
        if (ROOT/name).exists(): yield ROOT/name, '', (ROOT/name).read_text()


def md_references(text: str) -> list[str]:
    "The `.md` paths a text names (not inside URLs)."
    text = re.sub(r'\w+://\S+', '', text)
    return _MD_REF.findall(text)


def test_md_references_regex():
    assert md_references('see `data/features/README.md` and README.md.') == ['data/features/README.md', 'README.md']
    assert md_references('`shared/reference/methods-lebm-nce-damc.md` §2') == ['shared/reference/methods-lebm-nce-damc.md']
    assert md_references('../shared/reference/x.md, https://github.com/a/b/blob/main/README.md') == ['../shared/reference/x.md']
    assert md_references('a .mdx file, x.mdown, no.md5sum') == []


def test_no_dangling_md_references():
    "A reader can follow every `.md` reference: the file is in the repository (from the root or the citing folder)."
    git = subprocess.run(['git', 'ls-files'], cwd=ROOT, capture_output=True, text=True)
    tracked = set(git.stdout.split()) if git.returncode == 0 and git.stdout else None   # None: not a git checkout
    bad = []
    for f, where, text in _texts():
        for ref in md_references(text):
            cands = [(f.parent/ref).resolve(), (ROOT/ref).resolve()]
            ok = any(c.is_file() and (tracked is None or str(c.relative_to(ROOT)) in tracked)
                     for c in cands if c.is_relative_to(ROOT))
            if not ok: bad.append(f'{f.relative_to(ROOT)} {where}: {ref}')
        if _OUTSIDE.search(text): bad.append(f'{f.relative_to(ROOT)} {where}: cites notes outside the repository')
    assert not bad, 'references to .md files not in the repository:\n' + '\n'.join(bad)


def test_results_page(site):
    "The Results page has one section per committed study: its folder, its tables and its commands."
    import html as _html
    studies = sorted(p.parent for p in (ROOT/'nbs'/'results').glob('*/study.json'))
    assert studies, 'no studies under nbs/results/'
    page = (site/'results.html').read_text()
    main = page[page.index('<main'):]
    text = _html.unescape(re.sub(r'\s+', ' ', re.sub(r'<[^>]+>', ' ', main)))
    # commands sit in highlighted code blocks: there a tag splits no word (`<span>energy_reg</span><span>=</span>`)
    code = ' '.join(_html.unescape(re.sub(r'\s+', ' ', re.sub(r'<[^>]+>', '', b)))
                    for b in re.findall(r'<pre\b.*?</pre>', main, flags=re.S))
    n_tables = 0
    for d in studies:
        meta = json.loads((d/'study.json').read_text())
        assert f'nbs/results/{d.name}/' in text, f'{d.name} is not on the Results page'
        for c in meta.get('commands') or []: assert re.sub(r'\s+', ' ', c) in code, f'{d.name}: command missing from the code blocks: {c}'
        if meta.get('date'): assert meta['date'] in text
        n_tables += sum(2 if t.get('gap') else 1 for t in meta['tables']) + bool(meta.get('claims'))   # a gap table beside its table; the claims table
    assert main.count('<table') == n_tables, 'one table per table of each study (two with a gap)'
    assert 'Traceback' not in text


# --- figures and players: every method page shows what it does; the samplers page plays a chain ---

METHOD_NOTEBOOKS = ['11_samplers.ipynb', '30_lebm.ipynb', '31_joint_hebm.ipynb', '32_diffusion_hebm.ipynb',
                    '33_nce.ipynb', '34_daebm.ipynb', '35_drl.ipynb']
_IMG_SRC = re.compile(r'<img\b[^>]*\bsrc="([^"]+)"')


def page_figures(html:str)->list[str]:
    "The `src` of every figure in a page's main part that the page itself carries: a `data:` URI or a local file."
    main = html[html.find('<main'):] if '<main' in html else html
    return [s for s in _IMG_SRC.findall(main) if s.startswith('data:image/') or not re.match(r'^[a-z]+:|//', s)]


def test_page_figures_regex():
    h = ('<nav><img src="data:image/png;base64,AA"></nav><main><img alt="x" src="data:image/jpeg;base64,BB">'
         '<img src="images/a.png"><img src="https://x.org/b.png"><img id="_anim_img1"></main>')
    assert page_figures(h) == ['data:image/jpeg;base64,BB', 'images/a.png']
    assert page_figures('<main><p>no figure</p></main>') == []


def test_method_pages_have_figures(site):
    "The samplers page and every method page show at least one figure (stored output or inlined markdown image)."
    counts = {n: len(page_figures((site/page_name(n, _processed_frontmatter(n))).read_text())) for n in METHOD_NOTEBOOKS}
    missing = [n for n, k in counts.items() if k == 0]
    assert not missing, f'pages without a figure: {missing} (figures per page: {counts})'


@pytest.fixture(scope='module')
def samplers_page(server):
    "The samplers page in Chromium: its chain player before and after the slider moves and a step button is pressed."
    name = page_name('11_samplers.ipynb', _processed_frontmatter('11_samplers.ipynb'))
    page, requests, failures = open_page(f'{server}/{name}')
    try:
        player = page.locator('div.animation').first
        player.wait_for(timeout=10_000)
        img, slider = player.locator('img').first, player.locator('input[type="range"]').first
        page.wait_for_function('(e) => e.src.startsWith("data:image/")', arg=img.element_handle(), timeout=10_000)
        srcs = [img.get_attribute('src')]
        n_frames = int(slider.get_attribute('max')) + 1
        slider.evaluate('(e, v) => { e.value = v; e.dispatchEvent(new Event("input")); }', n_frames // 2)
        srcs.append(img.get_attribute('src'))
        player.locator('button[title="Next frame"]').click()
        srcs.append(img.get_attribute('src'))
        value = int(slider.input_value())
        shot = os.environ.get('LEBM_DOCS_PLAYER_SCREENSHOT')
        if shot: player.screenshot(path=shot)
        yield dict(srcs=srcs, n_frames=n_frames, value=value, requests=requests, failures=failures,
                   n_players=page.locator('div.animation').count(), text=page.inner_text('main'),
                   n_errors=page.eval_on_selector_all('.MathJax_Error, [data-mjx-error], merror', 'els => els.length'))
    finally:
        page.close()


@pytest.mark.slow
def test_player_advances(samplers_page):
    p = samplers_page
    assert p['n_players'] >= 1 and p['n_frames'] >= 10, p['n_frames']
    first, middle, next_ = p['srcs']
    assert all(s.startswith('data:image/') for s in p['srcs'])
    assert middle != first, 'moving the slider did not change the frame'
    assert next_ != middle and p['value'] == p['n_frames'] // 2 + 1, 'the step button did not advance the player'


@pytest.mark.slow
def test_samplers_page_offline(samplers_page):
    p = samplers_page
    hosts = {urlparse(u).hostname for u in p['requests'] if urlparse(u).scheme in ('http', 'https', 'ws', 'wss')}
    other = [u for u in p['requests'] if urlparse(u).scheme not in ('http', 'https', 'data', 'blob', 'about')]
    assert hosts == {'127.0.0.1'}, hosts
    assert not other, other
    assert not [u for u in p['failures'] if '/mathjax/fonts/HTML-CSS/TeX/' not in u], p['failures']
    assert 'Math Processing Error' not in p['text'] and p['n_errors'] == 0


@pytest.mark.slow
def test_players_on_pages(site):
    "The samplers and DA-EBM pages each carry a chain player: embedded frames, under 1 MB, nothing from the network."
    for n in ('11_samplers.ipynb', '34_daebm.ipynb'):
        html = (site/page_name(n, _processed_frontmatter(n))).read_text()
        players = re.findall(r'<div class="animation">.*?</script>', html, flags=re.S)
        assert players, f'{n}: no chain player on the page'
        for p in players:
            assert len(p) < 1_000_000, f'{n}: a player of {len(p)/1e6:.1f} MB'
            assert p.count('data:image/') >= 10, f'{n}: a player with fewer than 10 embedded frames'
            assert not re.search(r'(?:src|href)="(?:https?:)?//', p) and 'fa fa-' not in p


@pytest.mark.slow
def test_every_page_in_chromium(site, server):
    "Every page of the site in Chromium: MathJax typesets without an error and no request leaves 127.0.0.1."
    _, pages = _expected_sidebar()
    shots = os.environ.get('LEBM_DOCS_SCREENSHOTS')          # a folder: full-page screenshots of a few pages, for the record
    bad, figures = [], {}
    page, requests, _ = open_page(f'{server}/index.html')
    try:
        for name in dict.fromkeys(['index.html'] + pages):
            requests.clear()
            goto_typeset(page, f'{server}/{name}')
            text = page.evaluate('''() => { const m = document.querySelector('main').cloneNode(true);
                m.querySelectorAll('pre, code').forEach(e => e.remove()); return m.textContent; }''')   # prose may name the error in code
            n_err = page.eval_on_selector_all('.MathJax_Error, [data-mjx-error], merror', 'els => els.length')
            hosts = {urlparse(u).hostname for u in requests if urlparse(u).scheme in ('http', 'https', 'ws', 'wss')}
            if 'Math Processing Error' in text or n_err: bad.append(f'{name}: MathJax error')
            if hosts - {'127.0.0.1'}: bad.append(f'{name}: requests to {sorted(hosts - {"127.0.0.1"})}')
            figures[name] = page.eval_on_selector_all('main img', 'els => els.filter(e => e.naturalWidth > 0).length')
            if shots and name in ('lebm.html', 'daebm.html', 'explorer.html', 'samplers.html'):
                Path(shots).mkdir(parents=True, exist_ok=True); page.screenshot(path=str(Path(shots)/f'{name[:-5]}.png'), full_page=False)
    finally:
        page.close()
    assert not bad, bad
    assert set(figures) == set(pages) | {'index.html'}
    print('figures per page (rendered images in <main>):', figures)
