"""The docs site, built with the README's command and opened in headless Chromium, served on 127.0.0.1.

The site is built once for this module by `coursekit docs` (notebook runs are reused while the notebooks
and the library are unchanged). Chromium and its driver come from Debian (`make browser` installs them).
Screenshots of the home page and of an API entry are saved in build/screenshots/.
"""
import json, pkgutil, re, shutil, subprocess, sys, time, urllib.parse, urllib.request
from importlib import import_module
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from coursekit.cli import LESSONS

ROOT = Path(__file__).resolve().parents[1]
SITE, SHOTS = ROOT/'build'/'site', ROOT/'build'/'screenshots'
LESSON_PAGES = [f.split('_', 1)[1].replace('.ipynb', '.html') for _, files in LESSONS.values() for f in files]   # every lesson's pages


@pytest.fixture(scope='module')
def site():
    "Build the site with `coursekit docs`, as the README says; return its summary line."
    cmd = [str(Path(sys.executable).parent/'coursekit'), 'docs']
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, f'`coursekit docs` failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}'
    summary = [l for l in r.stdout.splitlines() if l.startswith('docs: ') and ' pages, ' in l]
    assert summary, r.stdout[-2000:]
    print(summary[-1])
    return summary[-1]


@pytest.fixture(scope='module')
def base(site):
    from coursekit.docsite import serve_site
    server = serve_site(SITE, port=0)
    yield f'http://127.0.0.1:{server.server_address[1]}/'
    server.shutdown()


@pytest.fixture(scope='module')
def browser():
    chromium = shutil.which('chromium') or shutil.which('chromium-browser')
    driver = shutil.which('chromedriver')
    if not (chromium and driver):
        pytest.fail('Chromium and chromedriver are not installed: `make browser` installs them from Debian '
                    '(apt-get install chromium chromium-driver).')
    o = Options()
    o.binary_location = chromium
    for a in ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1280,900']:
        o.add_argument(a)
    o.set_capability('goog:loggingPrefs', {'browser': 'ALL', 'performance': 'ALL'})
    d = webdriver.Chrome(service=Service(driver), options=o)
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def _open(d, url):
    "Load `url`; return its console errors and the addresses it requested outside 127.0.0.1."
    d.get_log('browser'); d.get_log('performance')          # drop what earlier pages left
    d.get(url)
    WebDriverWait(d, 20).until(lambda d: d.execute_script('return document.readyState') == 'complete')
    errors = [l['message'] for l in d.get_log('browser') if l['level'] == 'SEVERE']
    outside = set()
    for l in d.get_log('performance'):
        m = json.loads(l['message'])['message']
        if m['method'] == 'Network.requestWillBeSent':
            u = m['params']['request']['url']
            if not u.startswith(('http://127.0.0.1:', 'data:', 'blob:', 'about:')): outside.add(u)
    return errors, sorted(outside)


def test_home_page_loads_without_errors(base, browser):
    errors, outside = _open(browser, base)
    assert errors == [], errors
    assert outside == [], f'the home page asked the internet for {outside}'
    assert 'coursekit' in browser.title
    h1 = browser.find_element('css selector', 'article h1').text
    assert h1.startswith('coursekit'), h1
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SHOTS/'home.png'))


def test_sidebar_reaches_every_lesson(base, browser):
    for page in LESSON_PAGES:
        _open(browser, base)
        links = [a for a in browser.find_elements('css selector', 'nav.md-nav--primary a.md-nav__link')
                 if (a.get_attribute('href') or '').split('#')[0].endswith('/' + page)]
        assert links, f'no sidebar link to {page}'
        visible = [a for a in links if a.is_displayed()]
        assert visible, f'the sidebar link to {page} is hidden'
        visible[0].click()
        WebDriverWait(browser, 20).until(lambda d: d.current_url.split('#')[0].endswith('/' + page))
        assert browser.find_element('css selector', 'article h1').text


def test_fit_one_cycle_entry_shows_its_parameters(base, browser):
    errors, _ = _open(browser, base + 'learner.html#learner.fit_one_cycle')
    assert errors == [], errors
    entry = browser.execute_script("""
        const a = document.getElementById('learner.fit_one_cycle');
        if (!a) return null;
        const after = sel => [...document.querySelectorAll(sel)]
            .find(e => a.compareDocumentPosition(e) & Node.DOCUMENT_POSITION_FOLLOWING);
        const h = after('h3, h4'), pre = after('pre');
        h.scrollIntoView();
        const r = h.getBoundingClientRect();
        return {heading: h.innerText, sig: pre ? pre.innerText : null, top: r.top, visible: r.height > 0};""")
    assert entry is not None, 'learner.html has no entry with the id learner.fit_one_cycle'
    assert entry['heading'].startswith('Learner.fit_one_cycle') and entry['visible'], entry
    sig = entry['sig']
    assert sig.startswith('def fit_one_cycle('), sig
    for p in ['cyc_len', 'max_lr', 'moms', 'div_factor', 'pct_start', 'wd']: assert p in sig, (p, sig)
    browser.execute_script('window.scrollBy(0, -60)')         # the heading below the header bar
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SHOTS/'api_learner_fit_one_cycle.png'))


def _rendered_images(d):
    return d.execute_script("""return [...document.querySelectorAll('article img')]
        .filter(i => i.complete && i.naturalWidth > 0).map(i => [i.naturalWidth, i.naturalHeight]);""")


def test_lesson_pages_show_plots(base, browser):
    for page in ['sgd_1_linear.html', 'pets.html', 'adult.html']:
        _open(browser, base + page)
        imgs = [wh for wh in _rendered_images(browser) if min(wh) >= 100]
        assert imgs, f'{page} shows no rendered plot'


def test_search_finds_lr_find(base, browser):
    _open(browser, base)
    box = browser.find_element('css selector', 'input.md-search__input')
    WebDriverWait(browser, 10).until(lambda d: box.is_displayed())
    box.click()
    box.send_keys('lr_find')
    items = WebDriverWait(browser, 30).until(
        lambda d: d.find_elements('css selector', '.md-search-result__item a') or False)
    hits = [(a.get_attribute('href'), a.text) for a in items]
    assert any('learner.html' in h and 'lr_find' in t for h, t in hits), hits[:10]


def _pages():
    return sorted(p.name for p in SITE.glob('*.html') if p.name != '404.html')


def test_no_broken_link_or_image(base, browser):
    "Every page: no console error, nothing from the internet, every image drawn, every internal link lands."
    pages, ids, links, problems = _pages(), {}, [], []
    assert len(pages) >= 40, pages
    for page in pages:
        errors, outside = _open(browser, base + page)
        problems += [f'{page}: console error {e}' for e in errors] + [f'{page}: requested {u}' for u in outside]
        found = browser.execute_script("""return {
            ids: [...document.querySelectorAll('[id]')].map(e => e.id),
            links: [...document.querySelectorAll('a[href]')].map(a => a.href),
            broken: [...document.querySelectorAll('img')].filter(i => !(i.complete && i.naturalWidth > 0))
                       .map(i => i.src.slice(0, 80))};""")
        ids[page] = set(found['ids'])
        links += [(page, u) for u in found['links'] if u.startswith(base)]
        problems += [f'{page}: broken image {s}' for s in found['broken']]
    for page, url in sorted(set(links)):
        path, _, frag = url[len(base):].partition('#')
        path = urllib.parse.unquote(path) or 'index.html'
        target = path if path.endswith('.html') else None
        if target is None:                                   # assets, the search index: must be served
            try: urllib.request.urlopen(base + path).read()
            except OSError as e: problems.append(f'{page}: link {url}: {e}')
            continue
        if target not in ids: problems.append(f'{page}: link to a missing page {url}'); continue
        if frag and urllib.parse.unquote(frag) not in ids[target]: problems.append(f'{page}: link to a missing entry {url}')
    assert problems == [], '\n'.join(problems[:50]) + f'\n({len(problems)} problems)'
    print(f'{len(pages)} pages, {len(set(links))} internal links checked')


def _coursekit_modules():
    import coursekit
    for m in pkgutil.walk_packages(coursekit.__path__, 'coursekit.'):
        if m.name != 'coursekit._modidx': yield import_module(m.name)


def test_every_exported_name_has_an_entry(site):
    "Every name in every module's `__all__` that coursekit defines, and its classes' methods, has an entry; `doc` links to it."
    from coursekit.docs import anchor, defined_names, doc_url, module_page, public_members, site_url
    mods = [import_module('coursekit'), *_coursekit_modules()]
    own = {m.__name__: defined_names(m) for m in mods}
    html, missing, entries = {}, [], set()
    def check(what, url):
        page, _, frag = url.partition('#')
        if page not in html: html[page] = (SITE/page).read_text() if (SITE/page).exists() else ''
        entries.add(url)
        if f'id="{frag}"' not in html[page]: missing.append(f'{what} -> {url}')
    for mod in mods:
        for name in mod.__all__:
            obj = getattr(mod, name)
            homes = [m for m in mods if name in own[m.__name__] and getattr(m, name, None) is obj]
            if not homes: continue                           # numpy, torch, pathlib...: re-exported, not coursekit's
            check(f'{mod.__name__}.{name}', f'{module_page(homes[0].__name__)}#{anchor(name)}')
            if callable(obj): check(f'doc({name})', doc_url(obj)[len(site_url()):])
            if isinstance(obj, type) and obj.__name__ == name:
                for member, v in public_members(obj).items():
                    check(f'{name}.{member}', doc_url(getattr(obj, member))[len(site_url()):])
    assert missing == [], missing
    assert len(entries) > 300, len(entries)
    print(f'{len(entries)} documented names')


def test_nbdev_docs_processing_runs_on_every_notebook(monkeypatch):
    "What `nbdev_docs` does before Quarto renders (nbdev's own processors, `show_doc` cells run) works on every notebook."
    import warnings
    from execnb.nbio import read_nb
    from nbdev.processors import FilterDefaults
    monkeypatch.chdir(ROOT); monkeypatch.setenv('IN_TEST', '1')
    for nb_path in sorted((ROOT/'nbs').glob('*.ipynb')):
        with warnings.catch_warnings():
            warnings.filterwarnings('error', message='Found cells containing imports and other code')
            nb = read_nb(nb_path)
            FilterDefaults()(nb)                                  # raises, naming the cell, if a cell it runs fails
        assert nb.cells, nb_path
