"untar_data on the real sample archives, and every way a download or an archive can go wrong."
import hashlib, os, shutil, signal, socket, subprocess, sys, tarfile, time
from pathlib import Path

import pytest

from coursekit.datasets import URLs, Config, untar_data, download_data, url2name, DownloadError, ArchiveError
import coursekit.datasets as ds


def _digest(p): return hashlib.sha256(Path(p).read_bytes()).hexdigest()
def _leftovers(folder): return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith('.'))


# --- real sample datasets through a mirror folder ---------------------------------------------------

@pytest.mark.parametrize('url,expect', [
    (URLs.MNIST_TINY, ['labels.csv', 'test', 'train', 'valid']),
    (URLs.ML_SAMPLE, ['ratings.csv']),
    (URLs.ADULT_SAMPLE, ['adult.csv']),
    (URLs.HUMAN_NUMBERS, ['train.txt', 'valid.txt']),
    (URLs.ML_100k, ['README', 'allbut.pl', 'mku.sh', 'u.data', 'u.genre', 'u.info', 'u.item', 'u.occupation',
                    'u.user', 'u1.base', 'u1.test']),
    (URLs.ROSSMANN, ['store.csv', 'store_states.csv', 'test.csv', 'train.csv']),
    ('https://s3.amazonaws.com/fast-ai-sample/mnist_tiny', ['labels.csv', 'test', 'train', 'valid']),  # v1 style, no extension
])
def test_samples_from_mirror_folder(home, samples, monkeypatch, url, expect):
    monkeypatch.setenv('COURSEKIT_MIRROR', str(samples))
    path = untar_data(url)
    assert path == home/url2name(url)
    assert [p.name for p in path.ls()] == expect
    assert _leftovers(home) == []


def test_mnist_tiny_contents(home, samples, monkeypatch):
    monkeypatch.setenv('COURSEKIT_MIRROR', str(samples))
    path = untar_data(URLs.MNIST_TINY)
    counts = {d: len(list((path/d).rglob('*.png'))) for d in ('train', 'valid', 'test')}
    assert counts == {'train': 709, 'valid': 699, 'test': 20}
    assert (home/'mnist_tiny.tgz').read_bytes() == (samples/'mnist_tiny.tgz').read_bytes()


def test_every_url_constant_has_a_name(samples):
    "Each sample archive that stands for a course dataset is reachable from a URLs constant."
    names = {url2name(v) for k, v in vars(URLs).items() if isinstance(v, str) and v.endswith((".tgz", ".zip"))}
    for a in ('mnist_tiny', 'mnist_sample', 'camvid_tiny', 'imdb_sample', 'adult_sample', 'movie_lens_sample',
              'planet_sample', 'oxford-iiit-pet', 'ml-100k', 'rossmann', 'human_numbers', 'biwi_head_pose', 'bedroom'):
        assert a in names and (samples/f'{a}.tgz').exists(), a


def test_dest_and_fname(home, samples, tmp_path, monkeypatch):
    monkeypatch.setenv('COURSEKIT_MIRROR', str(samples))
    path = untar_data(URLs.ML_SAMPLE, fname=tmp_path/'arch'/'ml.tgz', dest=tmp_path/'mine')
    assert path == tmp_path/'mine'/'movie_lens_sample' and (path/'ratings.csv').exists()
    assert (tmp_path/'arch'/'ml.tgz').exists()
    assert not home.exists()


def test_models_go_to_model_path(home, tmp_path, monkeypatch):
    (tmp_path/'m').mkdir()
    with tarfile.open(tmp_path/'m'/'wt103.tgz', 'w:gz') as t: t.add(_make_file(tmp_path/'w'/'lstm.pth', b'w'), 'wt103/lstm.pth')
    monkeypatch.setenv('COURSEKIT_MIRROR', str(tmp_path/'m'))
    path = untar_data(URLs.WT103, data=False)
    assert path == Config.model_path()/'wt103' and (path/'lstm.pth').read_bytes() == b'w'


def _make_file(p, data):
    p.parent.mkdir(parents=True, exist_ok=True); p.write_bytes(data); return p


# --- a mirror served over HTTP -----------------------------------------------------------------------

def test_http_mirror(home, samples, server, monkeypatch):
    server.root = samples
    monkeypatch.setenv('COURSEKIT_MIRROR', server.url + '/')
    path = untar_data(URLs.MNIST_TINY)
    assert len(list((path/'train').rglob('*.png'))) == 709


def test_http_mirror_without_the_archive(home, tmp_path, server, monkeypatch):
    server.root = tmp_path
    monkeypatch.setenv('COURSEKIT_MIRROR', server.url)
    with pytest.raises(DownloadError, match=r'HTTP 404.*mirror.*mnist_tiny\.tgz'): untar_data(URLs.MNIST_TINY)
    assert not (home/'mnist_tiny').exists() and _leftovers(home) == []


def test_download_cut_short_by_the_server(home, samples, server, monkeypatch):
    server.root, server.behaviour = samples, 'truncate'
    monkeypatch.setenv('COURSEKIT_MIRROR', server.url)
    with pytest.raises(DownloadError, match='stopped after|failed'): untar_data(URLs.MNIST_TINY)
    assert not (home/'mnist_tiny').exists() and not (home/'mnist_tiny.tgz').exists()
    assert _leftovers(home) == []
    server.behaviour = 'ok'
    assert len(list((untar_data(URLs.MNIST_TINY)/'valid').rglob('*.png'))) == 699


def test_known_checksums_on_direct_downloads(home, tmp_path, server, monkeypatch):
    "Without a mirror, a file with a known size and hash is checked: a bad download is deleted, a bad cached copy fetched again."
    server.root = tmp_path/'srv'
    good = _tgz(tmp_path/'srv'/'tiny.tgz', 'tiny', {'a.txt': b'A'})
    url = f'{server.url}/tiny.tgz'
    monkeypatch.setitem(ds._CHECKS, url, (good.stat().st_size, 'f'*32))
    with pytest.raises(DownloadError, match='MD5'): download_data(url)
    assert not (home/'tiny.tgz').exists()
    monkeypatch.setitem(ds._CHECKS, url, ds._file_check(good))
    _make_file(home/'tiny.tgz', b'an old, different file')
    assert download_data(url).read_bytes() == good.read_bytes()
    assert (untar_data(url)/'a.txt').read_bytes() == b'A'


# --- bad names, bad archives, bad folders ----------------------------------------------------------------

def test_unknown_names():
    with pytest.raises(AttributeError, match='URLs.PETS'): URLs.PETZ
    with pytest.raises(ValueError, match='URLs.PETS'): untar_data('pets')
    with pytest.raises(ValueError, match='URLs.MNIST_SAMPLE'): untar_data('mnist_sample')
    with pytest.raises(ValueError, match='not a dataset URL'): untar_data('')


def test_mirror_folder_without_the_archive(home, tmp_path, monkeypatch):
    monkeypatch.setenv('COURSEKIT_MIRROR', str(tmp_path/'empty'))
    with pytest.raises(DownloadError) as e: untar_data(URLs.PETS)
    assert 'oxford-iiit-pet.tgz' in str(e.value) and str(tmp_path/'empty') in str(e.value) and 'COURSEKIT_MIRROR' in str(e.value)
    assert not (home/'oxford-iiit-pet').exists() and _leftovers(home) == []


def _tgz(fname, top, files):
    fname.parent.mkdir(parents=True, exist_ok=True)
    src = fname.parent/f'.src-{top}'
    for n, b in files.items(): _make_file(src/top/n, b)
    with tarfile.open(fname, 'w:gz') as t: t.add(src/top, top)
    shutil.rmtree(src)
    return fname


def test_truncated_archive_in_mirror(home, tmp_path, monkeypatch):
    full = _tgz(tmp_path/'full.tgz', 'tiny', {f'f{i}': os.urandom(50_000) for i in range(10)})
    mirror = tmp_path/'mirror'; mirror.mkdir()
    (mirror/'tiny.tgz').write_bytes(full.read_bytes()[:full.stat().st_size//2])
    before = _digest(mirror/'tiny.tgz')
    monkeypatch.setenv('COURSEKIT_MIRROR', str(mirror))
    with pytest.raises(ArchiveError) as e: untar_data('https://example.com/tiny.tgz')
    assert 'not a complete' in str(e.value) and str(mirror/'tiny.tgz') in str(e.value)
    assert _digest(mirror/'tiny.tgz') == before                       # the mirror's file is untouched
    assert sorted(p.name for p in home.iterdir()) == []               # no dataset folder, no broken cached copy


def test_not_an_archive(home, tmp_path, monkeypatch):
    _make_file(tmp_path/'mirror'/'notes.tgz', b'these are my notes, not a tar file\n')
    monkeypatch.setenv('COURSEKIT_MIRROR', str(tmp_path/'mirror'))
    with pytest.raises(ArchiveError, match='not a complete .tgz or .zip'): untar_data('https://example.com/notes')
    assert not (home/'notes').exists()


def test_users_own_broken_archive_is_kept(home, tmp_path):
    mine = _make_file(tmp_path/'mine.tgz', b'not a tar')
    with pytest.raises(ArchiveError, match='mine.tgz'): untar_data('https://example.com/x.tgz', fname=mine)
    assert mine.read_bytes() == b'not a tar'


def test_broken_cached_archive_is_fetched_again(home, samples, monkeypatch, capsys):
    monkeypatch.setenv('COURSEKIT_MIRROR', str(samples))
    _make_file(home/'human_numbers.tgz', (samples/'human_numbers.tgz').read_bytes()[:5000])
    path = untar_data(URLs.HUMAN_NUMBERS)
    assert len((path/'train.txt').read_text().splitlines()) == 7999
    assert 'Downloading it again' in capsys.readouterr().out


def test_force_download_keeps_old_folder_until_new_one_is_ready(home, tmp_path, monkeypatch):
    monkeypatch.setenv('COURSEKIT_MIRROR', str(tmp_path/'m'))
    _tgz(tmp_path/'m'/'d.tgz', 'd', {'v.txt': b'1'})
    path = untar_data('https://example.com/d.tgz')
    (tmp_path/'m'/'d.tgz').write_bytes(b'broken')
    with pytest.raises(ArchiveError): untar_data('https://example.com/d.tgz', force_download=True)
    assert (path/'v.txt').read_bytes() == b'1'                          # what the user had is still there
    _tgz(tmp_path/'m'/'d.tgz', 'd', {'v.txt': b'2'})
    assert (untar_data('https://example.com/d.tgz', force_download=True)/'v.txt').read_bytes() == b'2'
    assert _leftovers(home) == []


def test_unsafe_member_is_refused(home, tmp_path, monkeypatch):
    import io
    (tmp_path/'m').mkdir()
    with tarfile.open(tmp_path/'m'/'evil.tgz', 'w:gz') as t:
        info = tarfile.TarInfo('../../escaped.txt'); info.size = 3; t.addfile(info, io.BytesIO(b'bad'))
    monkeypatch.setenv('COURSEKIT_MIRROR', str(tmp_path/'m'))
    with pytest.raises(ArchiveError): untar_data('https://example.com/evil.tgz')
    assert not list(tmp_path.rglob('escaped.txt'))


def test_data_folder_not_writable(home, tmp_path, monkeypatch, samples):
    _make_file(tmp_path/'a-file', b'')
    monkeypatch.setenv('COURSEKIT_DATA', str(tmp_path/'a-file'/'data'))
    monkeypatch.setenv('COURSEKIT_MIRROR', str(samples))
    with pytest.raises(PermissionError) as e: untar_data(URLs.MNIST_TINY)
    assert str(tmp_path/'a-file'/'data') in str(e.value) and 'COURSEKIT_DATA' in str(e.value)


@pytest.mark.skipif(os.geteuid() == 0, reason='root can write anywhere; the file-in-the-way case above covers this path')
def test_data_folder_read_only(home, tmp_path, monkeypatch, samples):
    ro = tmp_path/'ro'; ro.mkdir(); ro.chmod(0o500)
    monkeypatch.setenv('COURSEKIT_DATA', str(ro))
    monkeypatch.setenv('COURSEKIT_MIRROR', str(samples))
    with pytest.raises(PermissionError, match='COURSEKIT_DATA'): untar_data(URLs.MNIST_TINY)


def test_offline_without_mirror(home):
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]   # a port nobody listens on
    url = f'http://127.0.0.1:{port}/data/mnist_tiny.tgz'
    with pytest.raises(DownloadError) as e: untar_data(url)
    msg = str(e.value)
    assert url in msg and 'COURSEKIT_MIRROR' in msg and 'mnist_tiny.tgz' in msg
    assert not (home/'mnist_tiny').exists() and _leftovers(home) == []


# --- processes killed half way ------------------------------------------------------------------------

def _child(code, env):
    return subprocess.Popen([sys.executable, '-c', code], env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_when(proc, cond, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if cond(): proc.send_signal(signal.SIGKILL); proc.wait(); return True
        if proc.poll() is not None: return False
        time.sleep(0.005)
    proc.kill(); return False


def test_download_killed_half_way(home, samples, server, monkeypatch):
    server.root, server.behaviour = samples, 'slow'
    env = {'COURSEKIT_HOME': str(home.parent), 'COURSEKIT_MIRROR': server.url}
    p = _child('from coursekit.datasets import *; untar_data(URLs.MNIST_TINY)', env)
    assert _kill_when(p, lambda: home.is_dir() and any(f.name.endswith('.part') and f.stat().st_size > 50_000 for f in home.iterdir()))
    assert not (home/'mnist_tiny.tgz').exists() and not (home/'mnist_tiny').exists()
    server.behaviour = 'ok'
    monkeypatch.setenv('COURSEKIT_MIRROR', server.url)
    path = untar_data(URLs.MNIST_TINY)
    assert len(list((path/'train').rglob('*.png'))) == 709
    assert _leftovers(home) == []                                       # the dead process's .part is gone


def test_extraction_killed_half_way(home, samples, monkeypatch):
    env = {'COURSEKIT_HOME': str(home.parent), 'COURSEKIT_MIRROR': str(samples)}
    p = _child('from coursekit.datasets import *; untar_data(URLs.MNIST_SAMPLE)', env)
    def partial_has_files():
        return home.is_dir() and any(d.name.endswith('.partial') and any(d.rglob('*.png')) for d in home.iterdir())
    assert _kill_when(p, partial_has_files)
    assert not (home/'mnist_sample').exists()                            # nothing that looks complete
    monkeypatch.setenv('COURSEKIT_MIRROR', str(samples))
    path = untar_data(URLs.MNIST_SAMPLE)
    assert len(list((path/'train').rglob('*.png'))) == 12396
    assert _leftovers(home) == []


def test_two_processes_at_once(home, samples):
    env = {'COURSEKIT_HOME': str(home.parent), 'COURSEKIT_MIRROR': str(samples)}
    code = 'from coursekit.datasets import *; print(untar_data(URLs.MNIST_TINY))'
    procs = [subprocess.Popen([sys.executable, '-c', code], env={**os.environ, **env}, stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate()[0].strip().splitlines()[-1] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert set(outs) == {str(home/'mnist_tiny')}
    assert len(list((home/'mnist_tiny'/'train').rglob('*.png'))) == 709 and _leftovers(home) == []


def test_folder_left_mid_swap_is_put_back(home, tmp_path, monkeypatch):
    "A process killed between moving the old folder aside and moving the new one in: the old one comes back."
    _make_file(home/'.d.999999999.old'/'mine.txt', b'my edits')        # no process has that id
    monkeypatch.setenv('COURSEKIT_MIRROR', str(tmp_path/'no-mirror'))  # nothing to download: it must not try
    path = untar_data('https://example.com/d.tgz')
    assert (path/'mine.txt').read_bytes() == b'my edits' and _leftovers(home) == []
