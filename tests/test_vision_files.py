"download_images and verify_images on real bear photos and on every way a download or an image file can be bad."
import io, os, random, socket, tarfile, threading, time
from pathlib import Path

import pytest
from PIL import Image, ImageFile

import coursekit.vision.files as vf
from coursekit.vision.files import image_extensions, download_images, verify_images

REPO = Path(__file__).resolve().parent.parent
BEARS = Path(os.environ.get('COURSEKIT_SAMPLES', REPO.parent/'shared'/'datasets'))/'bears.tgz'


@pytest.fixture(scope='module')
def bears(tmp_path_factory):
    "Six real photos from the lesson 2 bears sample and the first lines of its real URL file."
    assert BEARS.is_file(), f'the bears sample is missing: {BEARS}'
    d = tmp_path_factory.mktemp('bears')
    with tarfile.open(BEARS) as tf:
        members = [m for m in tf.getmembers() if m.name.startswith('bears/black/') and m.name.endswith('.jpg')][:6]
        members.append(tf.getmember('bears/urls_black.txt'))
        tf.extractall(d, members=members, filter='data')
    return sorted((d/'bears'/'black').glob('*.jpg')), (d/'bears'/'urls_black.txt').read_text().split()[:6]


def _files(folder): return sorted(p.name for p in Path(folder).iterdir())
def _files_of(paths): return [p.name for p in paths]
def _contents(folder): return {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}


# --- a raw server that answers anything we like (or nothing) ------------------------------------------

@pytest.fixture
def raw():
    "`raw(reply)` is the URL of a socket on 127.0.0.1 that sends `reply` (bytes) to each client, or never answers if `None`."
    socks = []
    def make(reply):
        s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(16); socks.append(s)
        def serve():
            while True:
                try: c, _ = s.accept()
                except OSError: return
                if reply is None: socks.append(c); continue  # keep it open, say nothing
                c.recv(65536); c.sendall(reply); c.close()
        threading.Thread(target=serve, daemon=True).start()
        return f'http://127.0.0.1:{s.getsockname()[1]}/x.jpg'
    yield make
    for s in socks: s.close()


def _jpeg(size=(60, 40), color='red'):
    b = io.BytesIO(); Image.new('RGB', size, color).save(b, 'JPEG'); return b.getvalue()


# --- download_images ---------------------------------------------------------------------------------

def test_image_extensions():
    assert {'.jpg', '.jpeg', '.png', '.gif', '.bmp', '.webp', '.tif', '.tiff'} <= image_extensions
    assert all(e.startswith('.') and e == e.lower() for e in image_extensions)
    assert not {'.txt', '.html', '.csv', '.json'} & image_extensions


def test_download_real_url_file(server, bears, tmp_path, capsys):
    "The lesson's URL file, its lines pointed at a local server that holds the photos under the same paths."
    photos, urls = bears
    server.root = tmp_path/'web'; server.root.mkdir()
    lines = []
    for photo, url in zip(photos, urls):
        path = url.split('/', 3)[3]  # images?q=tbn:...&s
        (server.root/path).write_bytes(photo.read_bytes())
        lines.append(f'{server.url}/{path}')
    (tmp_path/'urls_black.txt').write_text('\n'.join(lines) + '\n')
    saved = download_images(tmp_path/'urls_black.txt', tmp_path/'black', max_pics=200)
    assert _files_of(saved) == [f'{i:08d}.jpg' for i in range(len(photos))]
    assert [p.read_bytes() for p in saved] == [p.read_bytes() for p in photos]
    assert _files(tmp_path/'black') == [p.name for p in saved]  # nothing else, no temporary files
    assert f'{len(photos)} images saved' in capsys.readouterr().out


def test_list_of_urls_and_suffixes(server, raw, tmp_path):
    server.root = tmp_path/'web'; server.root.mkdir()
    Image.new('RGB', (5, 5)).save(server.root/'a.PNG', 'PNG')
    Image.new('RGB', (5, 5)).save(server.root/'b.php', 'JPEG')
    Image.new('RGB', (5, 5)).save(server.root/'c.webp', 'WEBP')
    Image.new('P', (5, 5)).save(server.root/'d.gif')
    webp = (server.root/'c.webp').read_bytes()
    query = raw(b'HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s' % (len(webp), webp)).replace('x.jpg', 'c.webp?w=5&h=5')
    urls = [f'{server.url}/a.PNG', f'{server.url}/b.php', query, f'{server.url}/d.gif']
    saved = download_images(urls, tmp_path/'out')
    assert [p.name for p in saved] == ['00000000.png', '00000001.jpg', '00000002.webp', '00000003.gif']
    assert saved[2].read_bytes() == webp
    assert download_images(f'{server.url}/a.PNG', tmp_path/'one') == [tmp_path/'one'/'00000000.png']  # a single URL


def test_http_404(server, tmp_path, capsys):
    server.root = tmp_path
    assert download_images([f'{server.url}/missing.jpg'], tmp_path/'out') == []
    assert _files(tmp_path/'out') == []
    out = capsys.readouterr().out
    assert '0 images saved' in out and '1 failed' in out and 'missing.jpg: HTTP 404' in out


def test_html_instead_of_image(server, raw, tmp_path, capsys):
    server.root = tmp_path/'web'; server.root.mkdir()
    (server.root/'photo.jpg').write_text('<!doctype html><html><body>Please sign in</body></html>')
    page = b'<html>blocked</html>'
    typed = raw(b'HTTP/1.0 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s' % (len(page), page))
    assert download_images([f'{server.url}/photo.jpg', typed], tmp_path/'out') == []
    assert _files(tmp_path/'out') == []
    out = capsys.readouterr().out
    assert 'photo.jpg: not an image Pillow can read' in out
    assert 'not an image Pillow can read (text/html; charset=utf-8)' in out


def test_timeout(raw, tmp_path, capsys):
    url = raw(None)
    t = time.monotonic()
    assert download_images([url, url], tmp_path/'out', timeout=0.5) == []
    assert time.monotonic() - t < 3
    assert _files(tmp_path/'out') == []
    assert capsys.readouterr().out.count('timed out') == 2


def test_truncated_download(server, bears, tmp_path, capsys):
    server.root, server.behaviour = bears[0][0].parent, 'truncate'
    assert download_images([f'{server.url}/{bears[0][0].name}'], tmp_path/'out', max_workers=0) == []
    assert _files(tmp_path/'out') == []
    assert 'cut short' in capsys.readouterr().out


def test_truncated_without_length(raw, tmp_path, capsys):
    "A server that gives no length and stops halfway: only decoding the file can tell."
    url = raw(b'HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\n\r\n' + _jpeg()[:300])
    assert download_images([url], tmp_path/'out') == []
    assert _files(tmp_path/'out') == []
    assert 'truncated' in capsys.readouterr().out.lower()


def test_slow_download_is_fine(server, tmp_path):
    server.root, server.behaviour = tmp_path, 'slow'
    Image.effect_noise((200, 200), 80).convert('RGB').save(tmp_path/'big.png')  # about 6 chunks, 0.05 s apart
    assert [p.name for p in download_images([f'{server.url}/big.png'], tmp_path/'out', timeout=0.5)] == ['00000000.png']


def test_mixed_list(server, raw, bears, tmp_path, capsys):
    photos, _ = bears
    server.root = photos[0].parent
    urls = [f'{server.url}/{photos[0].name}', f'{server.url}/nope.jpg', raw(None), 'not a url at all',
            raw(b'HTTP/1.0 500 Oops\r\n\r\n'), f'{server.url}/{photos[1].name}', f'http://127.0.0.1:1/x.jpg']
    saved = download_images(urls, tmp_path/'out', timeout=0.5)
    assert [p.name for p in saved] == ['00000000.jpg', '00000005.jpg']
    assert _files(tmp_path/'out') == ['00000000.jpg', '00000005.jpg']
    out = capsys.readouterr().out
    assert '2 images saved' in out and '5 failed' in out
    for why in ['HTTP 404', 'timed out', 'unknown url type', 'HTTP 500', 'refused']: assert why in out, why


def test_report_is_capped(server, tmp_path, capsys):
    server.root = tmp_path
    download_images([f'{server.url}/{i}.jpg' for i in range(15)], tmp_path/'out', max_workers=4)
    out = capsys.readouterr().out
    assert out.count('HTTP 404') == 10 and '... and 5 more' in out


def test_max_pics(server, bears, tmp_path):
    photos, _ = bears
    server.root = photos[0].parent
    lines = [f'{server.url}/{p.name}' for p in photos]
    (tmp_path/'urls.txt').write_text('\n'.join(lines) + '\n\n')
    assert _files_of(download_images(tmp_path/'urls.txt', tmp_path/'out', max_pics=2)) == ['00000000.jpg', '00000001.jpg']
    assert _files(tmp_path/'out') == ['00000000.jpg', '00000001.jpg']


@pytest.mark.parametrize('workers', [0, 1])
def test_no_threads(server, bears, tmp_path, monkeypatch, workers):
    def no_threads(*a, **k): raise AssertionError('threads were used')
    monkeypatch.setattr(vf, 'ThreadPoolExecutor', no_threads)
    photos, _ = bears
    server.root = photos[0].parent
    saved = download_images([f'{server.url}/{p.name}' for p in photos[:3]] + [f'{server.url}/x.jpg'], tmp_path/'out',
                            max_pics=20, max_workers=workers)
    assert _files_of(saved) == ['00000000.jpg', '00000001.jpg', '00000002.jpg']


def test_many_in_threads(server, bears, tmp_path):
    photos, _ = bears
    server.root = photos[0].parent
    urls = [f'{server.url}/{photos[i % len(photos)].name}' for i in range(40)]
    saved = download_images(urls, tmp_path/'out', max_workers=8)
    assert _files_of(saved) == [f'{i:08d}.jpg' for i in range(40)]
    assert all(p.read_bytes() == photos[i % len(photos)].read_bytes() for i, p in enumerate(saved))


def test_existing_files_untouched(server, bears, tmp_path, capsys):
    photos, _ = bears
    server.root = photos[0].parent
    out = tmp_path/'out'; out.mkdir()
    (out/'00000000.jpg').write_bytes(b'my own file')  # not even an image: still never replaced
    (out/'00000002.jpg').write_bytes(photos[5].read_bytes())
    (out/'notes.txt').write_text('keep me')
    before = _contents(out)
    urls = [f'{server.url}/{p.name}' for p in photos[:4]]
    saved = download_images(urls, out)
    assert _files_of(saved) == ['00000001.jpg', '00000003.jpg']
    assert all(_contents(out)[k] == v for k, v in before.items())
    assert _files(out) == ['00000000.jpg', '00000001.jpg', '00000002.jpg', '00000003.jpg', 'notes.txt']
    report = capsys.readouterr().out
    assert '2 images saved' in report and '2 already there' in report
    assert download_images(urls, out) == []  # a second run finds everything there
    assert '0 images saved' in capsys.readouterr().out
    assert all(_contents(out)[k] == v for k, v in before.items())


def test_never_replaces_a_file_that_appears_meanwhile(server, bears, tmp_path, monkeypatch):
    "Another process writes the same name while we download: its file wins, ours is dropped."
    photos, _ = bears
    server.root = photos[0].parent
    fetch = vf._fetch
    def fetch_and_race(url, tmp, timeout):
        fetch(url, tmp, timeout)
        (tmp.parent/'00000000.jpg').write_bytes(b'theirs')
    monkeypatch.setattr(vf, '_fetch', fetch_and_race)
    assert download_images([f'{server.url}/{photos[0].name}'], tmp_path/'out', max_workers=0) == []
    assert _contents(tmp_path/'out') == {'00000000.jpg': b'theirs'}


# --- verify_images -----------------------------------------------------------------------------------

@pytest.fixture
def folder(tmp_path, bears):
    "A folder of good photos, odd colour modes, and every kind of bad file."
    photos, _ = bears
    d = tmp_path/'imgs'; d.mkdir()
    for p in photos[:3]: (d/p.name).write_bytes(p.read_bytes())
    Image.new('L', (30, 20), 128).save(d/'gray.jpg')
    Image.new('RGBA', (30, 20), (1, 2, 3, 4)).save(d/'rgba.png')
    Image.new('P', (30, 20)).save(d/'palette.png')
    Image.new('CMYK', (30, 20)).save(d/'cmyk.jpg')
    Image.new('RGB', (30, 20), 'blue').save(d/'UPPER.JPG', 'JPEG')
    random.seed(0); (d/'corrupt.jpg').write_bytes(bytes(random.randrange(256) for _ in range(3000)))
    (d/'half.jpg').write_bytes(photos[3].read_bytes()[:len(photos[3].read_bytes())//2])
    png = d/'half.png'; Image.effect_noise((60, 60), 50).save(png); png.write_bytes(png.read_bytes()[:1500])
    (d/'empty.jpg').touch()
    (d/'page.jpg').write_text('<html><body>Not Found</body></html>')
    (d/'notes.txt').write_text('not an image, and not an image extension')
    (d/'drawing.svg').write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (d/'sub').mkdir(); Image.new('RGB', (600, 300)).save(d/'sub'/'deep.jpg')
    return d

BAD = {'corrupt.jpg', 'half.jpg', 'half.png', 'empty.jpg', 'page.jpg'}


def test_verify_delete_false_keeps_everything(folder, capsys):
    before = _contents(folder)
    bad = verify_images(folder, delete=False)
    assert {f.name for f in bad} == BAD | {'drawing.svg'}
    assert bad[folder/'empty.jpg'] == 'empty file'
    assert bad[folder/'page.jpg'] == 'not an image Pillow can read'
    assert 'truncated' in bad[folder/'half.jpg'].lower() and 'truncated' in bad[folder/'half.png'].lower()
    assert _contents(folder) == before
    out = capsys.readouterr().out
    assert '6 unreadable' in out and 'deleted' not in out and 'notes.txt' not in out


def test_verify_deletes_only_bad_files(folder, capsys):
    before = _contents(folder)
    bad = verify_images(folder)
    assert {f.name for f in bad} == BAD | {'drawing.svg'}
    assert 'kept' in bad[folder/'drawing.svg']  # an image format Pillow has no plugin for: not ours to delete
    assert _contents(folder) == {k: v for k, v in before.items() if k not in BAD}  # the others byte for byte
    assert (folder/'sub'/'deep.jpg').exists()
    assert '(5 deleted)' in capsys.readouterr().out


def test_verify_max_size_in_place(folder, bears):
    photos, _ = bears
    before = _contents(folder)
    verify_images(folder, max_size=100)
    for p in photos[:3]:
        with Image.open(p) as im: w, h = im.size
        with Image.open(folder/p.name) as im: assert max(im.size) == 100 and abs(im.size[0]/im.size[1] - w/h) < 0.02
    for name in ['gray.jpg', 'rgba.png', 'palette.png', 'cmyk.jpg']:
        with Image.open(folder/name) as im: assert (im.size, im.mode) == ((30, 20), 'RGB'), name
    assert (folder/'UPPER.JPG').read_bytes() == before['UPPER.JPG']  # small and RGB already: untouched
    assert (folder/'notes.txt').read_bytes() == before['notes.txt']
    with Image.open(folder/'sub'/'deep.jpg') as im: assert im.size == (600, 300)  # recurse=False
    assert not [p for p in folder.rglob('*') if p.name.startswith('.')]  # no temporary files left


def test_verify_max_size_into_dest_recursive(folder, capsys):
    before, deep = _contents(folder), (folder/'sub'/'deep.jpg').read_bytes()
    verify_images(folder, delete=False, max_size=200, dest='small', recurse=True, max_workers=0)
    assert _contents(folder) == before and (folder/'sub'/'deep.jpg').read_bytes() == deep  # originals untouched
    with Image.open(folder/'small'/'sub'/'deep.jpg') as im: assert im.size == (200, 100)  # subfolders kept
    changed = ['00000000.jpg', '00000001.jpg', '00000002.jpg', 'cmyk.jpg', 'gray.jpg', 'palette.png', 'rgba.png', 'sub']
    assert _files(folder/'small') == changed  # as in fastai v1, only the images that needed a change
    verify_images(folder, delete=False, max_size=200, dest='small', recurse=True)  # what is in dest is not checked again
    assert capsys.readouterr().out.count('15 images checked') == 2


def test_verify_ext_format_resume(tmp_path):
    Image.new('RGBA', (50, 10)).save(tmp_path/'a.png')
    verify_images(tmp_path, max_size=20, dest='out', ext='.jpg')
    with Image.open(tmp_path/'out'/'a.jpg') as im: assert (im.format, im.mode, im.size) == ('JPEG', 'RGB', (20, 4))
    (tmp_path/'out'/'a.jpg').write_bytes(b'done before')
    verify_images(tmp_path, max_size=20, dest='out', ext='.jpg', resume=True)
    assert (tmp_path/'out'/'a.jpg').read_bytes() == b'done before'
    verify_images(tmp_path, max_size=20, dest='out', img_format='PNG', quality=90)
    with Image.open(tmp_path/'out'/'a.png') as im: assert im.format == 'PNG' and im.size == (20, 4)


def test_verify_exif_orientation(tmp_path):
    im = Image.new('RGB', (400, 200)); exif = im.getexif(); exif[0x0112] = 6  # rotated 90 degrees
    im.save(tmp_path/'phone.jpg', exif=exif)
    verify_images(tmp_path, max_size=100)
    with Image.open(tmp_path/'phone.jpg') as im: assert im.size == (50, 100)


def test_verify_failed_save_keeps_the_file(tmp_path, capsys):
    Image.new('L', (50, 10)).save(tmp_path/'a.png')
    before = _contents(tmp_path)
    assert verify_images(tmp_path, max_size=20, ext='.xyz') == {}  # no format for .xyz: reported, nothing deleted
    assert _contents(tmp_path) == before
    out = capsys.readouterr().out
    assert '1 could not be saved' in out and 'a.png: could not save' in out and 'img_format' in out


def test_verify_keeps_images_too_large_for_pillow(tmp_path, monkeypatch):
    Image.new('RGB', (30, 20)).save(tmp_path/'huge.jpg')
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 100)  # 600 pixels is now more than twice the limit
    bad = verify_images(tmp_path, max_workers=0)
    assert 'kept' in bad[tmp_path/'huge.jpg'] and (tmp_path/'huge.jpg').exists()


def test_verify_no_max_size_leaves_modes_alone(tmp_path):
    Image.new('L', (30, 20)).save(tmp_path/'gray.png'); Image.new('RGBA', (30, 20)).save(tmp_path/'rgba.png')
    before = _contents(tmp_path)
    assert verify_images(tmp_path) == {}
    assert _contents(tmp_path) == before


def test_verify_threads_same_result(folder):
    a = verify_images(folder, delete=False, max_workers=0)
    b = verify_images(folder, delete=False, max_workers=8)
    assert a == b


def test_verify_does_not_touch_pillow_globals(folder):
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    verify_images(folder, delete=False, max_size=50)
    assert ImageFile.LOAD_TRUNCATED_IMAGES == before


def test_verify_real_photos(bears, tmp_path, capsys):
    photos, _ = bears
    for p in photos: (tmp_path/p.name).write_bytes(p.read_bytes())
    assert verify_images(tmp_path) == {}
    assert f'{len(photos)} images checked' in capsys.readouterr().out


def test_verify_empty_folder(tmp_path):
    assert verify_images(tmp_path) == {}
