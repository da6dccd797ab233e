"Vision on real files: bad images in a DataBunch, odd image modes, export and load_learner, pretrained weights from torch's cache, a lesson-1 script."
import hashlib, os, shutil, subprocess, sys, tarfile, textwrap, warnings
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from coursekit.vision import (ImageDataBunch, ImageList, DatasetType, cnn_learner, models, accuracy, get_transforms,
                              load_learner, open_image, verify_images, WeightsUnavailable, imagenet_stats)
from coursekit.learner import Learner
from coursekit.layers import simple_cnn

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def mnist(samples, tmp_path):
    "A private copy of MNIST_TINY's train and valid folders."
    with tarfile.open(samples/'mnist_tiny.tgz') as t: t.extractall(tmp_path, filter='data')
    return tmp_path/'mnist_tiny'


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _bad_files(folder:Path) -> list:
    "Plant a corrupt, a truncated, an empty and a non-image file among the images of `folder`."
    good = sorted(folder.glob('*.png'))[0].read_bytes()
    (folder/'corrupt.png').write_bytes(b'\x89PNG\r\n\x1a\n' + os.urandom(200))
    (folder/'truncated.png').write_bytes(good[:len(good)//2])
    (folder/'empty.png').write_bytes(b'')
    (folder/'page.png').write_text('<html><body>Not found</body></html>')
    return ['corrupt.png', 'truncated.png', 'empty.png', 'page.png']


def test_bad_images_never_stop_an_epoch(mnist):
    bad = _bad_files(mnist/'train'/'3')
    data = ImageDataBunch.from_folder(mnist, size=28, bs=16, num_workers=0)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        n = sum(len(xb) for xb, _ in data.fix_dl)
    assert n == len(data.train_ds) - len(bad)
    said = ' '.join(str(x.message) for x in w)
    for f in bad: assert f in said and 'verify_images' in said
    learn = Learner(data, simple_cnn((3, 8, 2)))
    learn.fit(1, 1e-3)                                       # a whole epoch, shuffled, with the bad files in it
    assert len(learn.recorder.losses) == len(data.train_dl)


def test_interpretation_refuses_shifted_indices(mnist):
    _bad_files(mnist/'valid'/'3')
    data = ImageDataBunch.from_folder(mnist, size=28, bs=64, num_workers=0)
    learn = Learner(data, simple_cnn((3, 8, 2)))
    from coursekit.vision import ClassificationInterpretation
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with pytest.raises(RuntimeError, match='verify_images'): ClassificationInterpretation.from_learner(learn)
        verify_images(mnist/'valid'/'3', delete=True)
        data = ImageDataBunch.from_folder(mnist, size=28, bs=64, num_workers=0)
        interp = ClassificationInterpretation.from_learner(Learner(data, simple_cnn((3, 8, 2))))
    assert len(interp.losses) == len(data.valid_ds)


def test_bad_images_with_workers(mnist):
    _bad_files(mnist/'valid'/'7')
    data = ImageDataBunch.from_folder(mnist, size=28, bs=64, num_workers=2)
    assert sum(len(xb) for xb, _ in data.valid_dl) == len(data.valid_ds) - 4


def test_verify_images_then_the_folder_is_clean(mnist):
    folder = mnist/'train'/'7'
    bad = _bad_files(folder)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.name not in bad}
    verify_images(folder, delete=True)
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    assert after == before                                   # only the bad files went, the others are untouched
    data = ImageDataBunch.from_folder(mnist, size=28, num_workers=0)
    assert sum(len(xb) for xb, _ in data.fix_dl) == len(data.train_ds)


def test_odd_modes_and_small_images(tmp_path):
    for split in ('train', 'valid'):
        for c, mode in (('grey', 'L'), ('rgba', 'RGBA'), ('palette', 'P'), ('cmyk', 'CMYK')):
            d = tmp_path/split/c; d.mkdir(parents=True)
            for i in range(3): PIL.Image.new(mode, (10 + i, 7)).save(d/f'{i}.{"jpg" if mode == "CMYK" else "png"}')
    (tmp_path/'train'/'empty_class').mkdir()                 # an empty class folder: no items, no class
    data = ImageDataBunch.from_folder(tmp_path, size=32, bs=4, num_workers=0)
    assert data.classes == ['cmyk', 'grey', 'palette', 'rgba']
    xb, yb = data.one_batch()
    assert xb.shape == (4, 3, 32, 32)                         # smaller than size: scaled up; every mode: 3 channels
    data = ImageDataBunch.from_folder(tmp_path, size=32, bs=4, num_workers=0, resize_method='pad', padding_mode='zeros')
    assert data.one_batch()[0].shape == (4, 3, 32, 32)


def test_label_only_in_valid_names_the_item(mnist):
    (mnist/'valid'/'9').mkdir()
    shutil.copy(next((mnist/'valid'/'7').glob('*.png')), mnist/'valid'/'9'/'x.png')
    with pytest.raises(ValueError, match=r"x\.png\) has the label '9'.*label_from_folder|label_from_folder: item \d+ \(.*x\.png\) has the label '9'"):
        ImageDataBunch.from_folder(mnist, size=28)


def test_csv_naming_a_missing_file(mnist):
    (mnist/'labels.csv').write_text('name,label\ntrain/3/7463.png,3\ntrain/3/gone.png,3\n')
    with pytest.raises(FileNotFoundError, match=r'gone\.png \(row 1\)'):
        ImageDataBunch.from_csv(mnist, size=28)


def _trained(mnist):
    torch.manual_seed(0)
    data = ImageDataBunch.from_folder(mnist, ds_tfms=get_transforms(do_flip=False), size=28, bs=64, num_workers=0).normalize()
    learn = cnn_learner(data, models.resnet18, pretrained=False, metrics=accuracy)
    learn.fit_one_cycle(1, 1e-2)
    return data, learn


def test_export_load_learner_predict(mnist):
    data, learn = _trained(mnist)
    fn = mnist/'valid'/'7'/sorted(os.listdir(mnist/'valid'/'7'))[0]
    cat, idx, probs = learn.predict(open_image(fn))
    f = learn.export()
    assert f == mnist/'export.pkl'
    state = torch.load(f, weights_only=True)                   # plain data: no code runs when it loads
    assert state['model_recipe']['kwargs']['arch'] == 'resnet18' and state['data']['classes'] == ['3', '7']
    learn2 = load_learner(mnist)
    for item in (fn, open_image(fn), PIL.Image.open(fn)):
        cat2, idx2, probs2 = learn2.predict(item)
        assert str(cat2) == str(cat) and cat2 == str(cat) and idx2 == idx
        torch.testing.assert_close(probs2, probs, atol=1e-5, rtol=1e-4)
    # serving many at once: a test set, then get_preds
    learn3 = load_learner(mnist, test=ImageList.from_folder(mnist/'valid'/'7'))
    preds, _ = learn3.get_preds(ds_type=DatasetType.Test)
    assert preds.shape == (len(os.listdir(mnist/'valid'/'7')), 2)
    ref, _ = learn.get_preds(ds_type=DatasetType.Valid)
    valid7 = [i for i, o in enumerate(data.valid_ds.x.items) if Path(o).parent.name == '7']
    torch.testing.assert_close(preds, ref[valid7], atol=1e-5, rtol=1e-4)


def _fake_cache(tmp_path, monkeypatch, name):
    "Put weights the test makes itself where torchvision's download looks first (torch's cache)."
    monkeypatch.setenv('TORCH_HOME', str(tmp_path/'torch'))
    torch.hub.set_dir(str(tmp_path/'torch'/'hub'))
    w = torchvision_weights(name)
    torch.manual_seed(1)
    sd = getattr(models, name)(weights=None).state_dict()
    folder = tmp_path/'torch'/'hub'/'checkpoints'; folder.mkdir(parents=True)
    torch.save(sd, folder/w.url.rsplit('/', 1)[-1])
    return sd


def torchvision_weights(name):
    import torchvision
    return torchvision.models.get_model_weights(name).DEFAULT


def test_pretrained_weights_come_from_torch_cache(mnist, tmp_path, monkeypatch):
    old = torch.hub.get_dir()
    try:
        sd = _fake_cache(tmp_path, monkeypatch, 'resnet18')
        data = ImageDataBunch.from_folder(mnist, size=28, num_workers=0)
        learn = cnn_learner(data, models.resnet18)
        torch.testing.assert_close(learn.model[0][0].weight.detach().cpu(), sd['conv1.weight'])
        torch.testing.assert_close(learn.model[0][4][0].bn1.running_var.cpu(), sd['layer1.0.bn1.running_var'])
        assert not learn.model[0][0].weight.requires_grad and learn.model[1][-1].weight.requires_grad   # body frozen
    finally: torch.hub.set_dir(old)


def test_no_weights_offline_says_what_to_do(mnist, tmp_path, monkeypatch):
    old = torch.hub.get_dir()
    try:
        monkeypatch.setenv('TORCH_HOME', str(tmp_path/'torch')); torch.hub.set_dir(str(tmp_path/'torch'/'hub'))
        import torchvision.models._api as api
        def offline(*a, **k): raise OSError('no network')
        monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', offline)
        monkeypatch.setattr(api, 'load_state_dict_from_url', offline, raising=False)
        data = ImageDataBunch.from_folder(mnist, size=28, num_workers=0)
        with pytest.raises(WeightsUnavailable) as e: cnn_learner(data, models.resnet18)
        msg = str(e.value)
        assert 'resnet18' in msg and 'pretrained=False' in msg and str(tmp_path/'torch'/'hub'/'checkpoints') in msg
    finally: torch.hub.set_dir(old)


LESSON1 = '''
from coursekit.vision import *
bs = 64
path = untar_data(URLs.PETS); path
path.ls()
path_anno = path/'annotations'
path_img = path/'images'
fnames = get_image_files(path_img)
fnames[:5]
np.random.seed(2)
pat = r'/([^/]+)_\\d+.jpg$'
data = ImageDataBunch.from_name_re(path_img, fnames, pat, ds_tfms=get_transforms(), size=224, bs=bs
                                  ).normalize(imagenet_stats)
data.show_batch(rows=3, figsize=(7,6))
print(data.classes)
len(data.classes),data.c
learn = cnn_learner(data, models.resnet34, metrics=error_rate)
learn.model
learn.fit_one_cycle(4)
learn.save('stage-1')
interp = ClassificationInterpretation.from_learner(learn)
losses,idxs = interp.top_losses()
len(data.valid_ds)==len(losses)==len(idxs)
interp.plot_top_losses(9, figsize=(15,11))
interp.plot_confusion_matrix(figsize=(12,12), dpi=60)
interp.most_confused(min_val=2)
learn.unfreeze()
learn.fit_one_cycle(1)
learn.load('stage-1');
print('RESULT', data.classes, learn.recorder.metrics[-1][0], len(losses))
'''


def test_lesson1_script_with_only_the_import_changed(samples, tmp_path, monkeypatch):
    "The lesson's own lines (224 px, resnet34 with 'pretrained' weights the test puts in torch's cache) run as a script."
    sd = {k: v for k, v in _fake_cache(tmp_path, monkeypatch, 'resnet34').items()}
    script = tmp_path/'lesson1.py'
    script.write_text('import matplotlib; matplotlib.use("Agg")\n' + textwrap.dedent(LESSON1))
    env = {**os.environ, 'COURSEKIT_HOME': str(tmp_path/'home'), 'COURSEKIT_DATA': str(tmp_path/'data'),
           'COURSEKIT_MIRROR': str(samples), 'TORCH_HOME': str(tmp_path/'torch'), 'OMP_NUM_THREADS': '2'}
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    assert "RESULT ['Abyssinian', 'Bengal', 'american_bulldog']" in out, out[-2000:]
    assert (tmp_path/'data'/'oxford-iiit-pet'/'images'/'models'/'stage-1.pth').exists()


@pytest.mark.parametrize('arch', ['resnet18', 'resnet50', 'densenet121', 'vgg16_bn', 'squeezenet1_1', 'alexnet'])
def test_every_architecture_gives_three_groups(arch):
    from coursekit.vision.learner import cnn_model, arch_meta
    from coursekit.learner import split_model
    m = cnn_model(arch, 5)
    groups = split_model(m, arch_meta(arch)['split'](m))
    assert len(groups) == 3 and all(sum(p.numel() for p in g.parameters()) for g in groups)
    assert {id(p) for p in groups[-1].parameters()} == {id(p) for p in m[1].parameters()}   # the head is the last group
    with torch.no_grad(): assert m.eval()(torch.randn(1, 3, 224, 224)).shape == (1, 5)
