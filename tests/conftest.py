"Shared fixtures: a private coursekit home per test, the sample-archive mirror, a local web server."
import http.server, os, threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get('COURSEKIT_SAMPLES', REPO.parent/'shared'/'datasets'))


@pytest.fixture
def home(tmp_path, monkeypatch):
    "A fresh coursekit home with no mirror set; returns its data folder."
    monkeypatch.setenv('COURSEKIT_HOME', str(tmp_path/'home'))
    for v in ('COURSEKIT_DATA', 'COURSEKIT_MODELS', 'COURSEKIT_MIRROR'): monkeypatch.delenv(v, raising=False)
    return tmp_path/'home'/'data'


@pytest.fixture
def samples():
    "The folder of real sample archives (../shared/datasets); the tests need it."
    assert SHARED.is_dir() and list(SHARED.glob('*.tgz')), f'the sample datasets are missing: {SHARED}'
    return SHARED


class _Handler(http.server.SimpleHTTPRequestHandler):
    "Serves files from `server.root`; `server.behaviour` can cut a reply short or slow it down."
    def log_message(self, *args): pass

    def do_GET(self):
        srv = self.server
        f = Path(srv.root)/self.path.lstrip('/')
        if not f.is_file(): return self.send_error(404)
        data = f.read_bytes()
        self.send_response(200)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        if srv.behaviour == 'truncate': data = data[:len(data)//2]
        step = 16384 if srv.behaviour == 'slow' else len(data) or 1
        for i in range(0, len(data), step):
            self.wfile.write(data[i:i+step])
            if srv.behaviour == 'slow': self.wfile.flush(); threading.Event().wait(0.05)


@pytest.fixture
def server():
    "A web server on 127.0.0.1 serving a folder: set `.root` and `.behaviour` ('ok', 'truncate', 'slow')."
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    srv.root, srv.behaviour = None, 'ok'
    srv.url = f'http://127.0.0.1:{srv.server_address[1]}'
    t = threading.Thread(target=srv.serve_forever, daemon=True); t.start()
    yield srv
    srv.shutdown(); srv.server_close()
