"The lesson 2 data-cleaning widgets, clicked headlessly: what they pick, what they write, and which files they touch."
import hashlib, os, shutil, tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from conftest import SHARED
from coursekit.data import DatasetType
from coursekit.layers import simple_cnn
from coursekit.learner import Learner
from coursekit.vision.data import ImageDataBunch, ImageList
from coursekit.widgets import DatasetFormatter, ImageCleaner, FileDeleter


def _extract(archive, dest, keep=lambda name: True):
    "Extract the members of `archive` whose names pass `keep` into `dest`."
    assert archive.is_file(), f'the sample archive is missing: {archive}'
    with tarfile.open(archive) as tf:
        tf.extractall(dest, members=[m for m in tf.getmembers() if keep(m.name)], filter='data')


def _hashes(folder):
    "The MD5 of every file under `folder` but the cleaner's CSV."
    return {p: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(Path(folder).rglob('*'))
            if p.is_file() and p.name != 'cleaned.csv'}


@pytest.fixture(scope='module')
def mnist(tmp_path_factory):
    "A private copy of MNIST_TINY with one planted duplicate, its data and a small trained learner."
    d = tmp_path_factory.mktemp('mnist')
    _extract(SHARED/'mnist_tiny.tgz', d)
    path = d/'mnist_tiny'
    shutil.copy(path/'valid'/'7'/'702.png', path/'valid'/'7'/'copy_of_702.png')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)        # tiny convolutions: one thread is much faster on a busy two-core machine
    torch.manual_seed(0)
    data = ImageDataBunch.from_folder(path, size=28, num_workers=0, bs=32)
    learn = Learner(data, simple_cnn((3, 16, 16, 2)))
    learn.fit(1, 1e-2)
    yield path, data, learn
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def bears_src(tmp_path_factory):
    "Eight real photos of each class of the lesson 2 bears sample (pristine: tests copy it)."
    d = tmp_path_factory.mktemp('bears_src')
    per_class = {}
    def keep(name):
        parts = name.split('/')
        if len(parts) != 3 or not name.endswith('.jpg'): return False
        per_class[parts[1]] = per_class.get(parts[1], 0) + 1
        return per_class[parts[1]] <= 8
    _extract(SHARED/'bears.tgz', d, keep)
    return d/'bears'


@pytest.fixture
def bears(bears_src, tmp_path):
    "A fresh copy of the bear photos that a test may change."
    return Path(shutil.copytree(bears_src, tmp_path/'bears'))


def _bears_ds(path):
    "All the bear photos as one labelled set (`split_none`), as the lesson cleans them."
    return ImageList.from_folder(path).split_none().label_from_folder().train


# --- DatasetFormatter ---------------------------------------------------------------------------------

def test_toplosses_is_get_preds_sorted(mnist):
    _, data, learn = mnist
    ds, idxs = DatasetFormatter.from_toplosses(learn)
    losses = learn.get_preds(ds_type=DatasetType.Valid, with_loss=True)[2]
    assert ds is data.valid_ds and sorted(idxs) == list(range(len(ds)))
    assert idxs == sorted(range(len(losses)), key=lambda i: -losses[i].item())
    assert DatasetFormatter.from_toplosses(learn, n_imgs=7, size=224)[1] == idxs[:7]
    ds, idxs = DatasetFormatter.from_toplosses(learn, ds_type=DatasetType.Train)
    train_losses = learn.get_preds(ds_type=DatasetType.Train, with_loss=True)[2]
    assert ds.x is data.train_ds.x and idxs == train_losses.argsort(descending=True, stable=True).tolist()
    with pytest.raises(TypeError, match='n_img'): DatasetFormatter.from_toplosses(learn, n_img=3)


def test_similars_finds_the_planted_duplicate(mnist):
    _, data, learn = mnist
    learn.model.train()
    ds, pairs = DatasetFormatter.from_similars(learn, layer_ls=[1])
    assert learn.model.training, 'from_similars must give the model back in the mode it found it'
    assert ds is data.valid_ds and len(pairs) == len(ds)
    assert {ds.x.items[i].name for i in pairs[0]} == {'702.png', 'copy_of_702.png'}
    assert all(i < j for i, j in pairs) and len(set(pairs)) == len(pairs)
    _, pairs2 = DatasetFormatter.from_similars(learn, layer_ls=[1, 0], pool=nn.AdaptiveAvgPool2d(1), n_pairs=3)
    assert len(pairs2) == 3 and {ds.x.items[i].name for i in pairs2[0]} == {'702.png', 'copy_of_702.png'}


def test_similars_on_the_training_set_sees_through_random_crops(bears):
    "The lesson cleans all the images as one training set, whose items are randomly cropped as they load."
    from PIL import Image
    src = next(p for p in sorted(bears.rglob('*.jpg')) if Image.open(p).size[0] != Image.open(p).size[1])
    shutil.copy(src, bears/'teddys'/'copy.jpg')
    data = (ImageList.from_folder(bears).split_none().label_from_folder()
            .transform(None, size=32).databunch(bs=8, num_workers=0))
    assert data.train_ds.train
    torch.manual_seed(0)
    learn = Learner(data, simple_cnn((3, 8, 8, 3)))
    ds, pairs = DatasetFormatter.from_similars(learn, layer_ls=[1], ds_type=DatasetType.Train)
    assert ds.x is data.train_ds.x and len(pairs) == len(ds)
    md5 = [hashlib.md5(Path(o).read_bytes()).hexdigest() for o in ds.x.items]
    n_same = sum(md5[i] == md5[j] for i in range(len(ds)) for j in range(i + 1, len(ds)))
    planted = tuple(sorted(i for i, o in enumerate(ds.x.items) if Path(o).name == 'copy.jpg' or Path(o) == src))
    assert planted in pairs[:n_same], 'an exact copy must be among the pairs of identical files, at the top'
    assert all(md5[i] == md5[j] for i, j in pairs[:n_same])


def test_similars_bad_layer_names_the_path(mnist):
    learn = mnist[2]
    with pytest.raises(IndexError) as e: DatasetFormatter.from_similars(learn)     # [0, 7, 2] is a ResNet path
    msg = str(e.value)
    assert 'layer_ls=[0, 7, 2]' in msg and 'model[0] (Sequential) has no child 7' in msg and '0: Conv2d, 1: ReLU' in msg
    with pytest.raises(IndexError, match=r"model\[1\]\[0\] \(Conv2d\) has no child 0; its children are \[none\]"):
        DatasetFormatter.from_similars(learn, layer_ls=[1, 0, 0])
    with pytest.raises(IndexError, match="has no child 'a'"): DatasetFormatter.from_similars(learn, layer_ls=['a'])


# --- ImageCleaner -------------------------------------------------------------------------------------

def test_cleaner_relabels_drops_and_never_touches_files(mnist):
    path, data, learn = mnist
    before = _hashes(path)
    ds, idxs = DatasetFormatter.from_toplosses(learn)
    c = ImageCleaner(ds, idxs, path, batch_size=3)
    assert [w.idx for w in c.batch_widgets] == idxs[:3] and c.csv_path == path/'cleaned.csv'
    a, b = idxs[0], idxs[1]
    old = c.labels[a]
    new = '7' if old == '3' else '3'
    assert c.batch_widgets[0].dropdown.value == old == ds.y.items[a]
    c.batch_widgets[0].dropdown.value = new
    c.batch_widgets[1].delete.click()
    c.batch_widgets[2].delete.click(); c.batch_widgets[2].delete.click()      # undone
    assert c.deleted == {b} and c.labels[a] == new
    assert not c.csv_path.exists(), 'nothing is written before Next Batch'
    c.next_button.click()
    assert [w.idx for w in c.batch_widgets] == idxs[3:6]
    df = pd.read_csv(c.csv_path, dtype=str)
    assert list(df.columns) == ['name', 'label'] and len(df) == len(ds) - 1
    rows = dict(zip(df['name'], df['label']))
    assert rows[Path(ds.x.items[a]).relative_to(path).as_posix()] == new
    assert Path(ds.x.items[b]).relative_to(path).as_posix() not in rows
    for i in idxs[2:]: assert rows[Path(ds.x.items[i]).relative_to(path).as_posix()] == ds.y.items[i]   # shown or never shown
    assert all(not n.startswith('/') and '\\' not in n for n in rows)
    assert _hashes(path) == before, 'ImageCleaner must never delete or modify an image file'
    assert not [p for p in path.iterdir() if p.name.startswith('.')], 'a temporary file was left behind'
    clean = ImageDataBunch.from_csv(path, csv_labels='cleaned.csv', size=28, num_workers=0, seed=0)
    assert len(clean.train_ds) + len(clean.valid_ds) == len(ds) - 1


def test_cleaner_runs_to_the_end_and_writes(bears):
    ds = _bears_ds(bears)
    before = _hashes(bears)
    c = ImageCleaner(ds, [5, 20], bears, batch_size=1)
    c.batch_widgets[0].dropdown.value = 'teddys'
    c.next_button.click()
    c.batch_widgets[0].delete.click()
    c.next_button.click()
    assert c.batch_widgets == [] and 'No more images' in c.widget.children[0].value
    df = pd.read_csv(bears/'cleaned.csv')
    assert len(df) == len(ds) - 1 == 23 and ds.x.items[20].relative_to(bears).as_posix() not in set(df['name'])
    assert df.set_index('name').loc[ds.x.items[5].relative_to(bears).as_posix(), 'label'] == 'teddys'
    assert _hashes(bears) == before
    ImageCleaner(ds, [], bears)                          # nothing to show: writes the list at once
    assert len(pd.read_csv(bears/'cleaned.csv')) == len(ds)


def test_cleaner_duplicates_side_by_side_and_in_sync(bears):
    ds = _bears_ds(bears)
    c = ImageCleaner(ds, [(0, 1), (0, 2), (3, 4)], bears, batch_size=2, duplicates=True)
    assert [w.idx for w in c.batch_widgets] == [0, 1, 0, 2]
    assert [len(row.children) for row in c.widget.children[:-1]] == [2, 2]
    c.batch_widgets[0].delete.click()
    assert c.deleted == {0} and c.batch_widgets[2].delete.description == 'Deleted (undo)'
    c.batch_widgets[2].dropdown.value = 'grizzly'
    assert c.batch_widgets[0].dropdown.value == 'grizzly' == c.labels[0]
    c.next_button.click()
    assert [w.idx for w in c.batch_widgets] == [3, 4]
    flat = ImageCleaner(ds, [3, 4, 5, 6], bears, duplicates=True)      # fastai v1 gave the pairs flattened
    assert [w.idx for w in flat.batch_widgets] == [3, 4, 5, 6]


def test_cleaner_writes_atomically(bears):
    ds = _bears_ds(bears)
    c = ImageCleaner(ds, [0], bears)
    c.write_csv()
    good = (bears/'cleaned.csv').read_bytes()
    class Bad:
        def __str__(self): raise RuntimeError('disk full')
    c.labels[len(ds) - 1] = Bad()                        # fails on the last row, after the others were written
    with pytest.raises(RuntimeError, match='disk full'): c.write_csv()
    assert (bears/'cleaned.csv').read_bytes() == good
    assert sorted(p.name for p in bears.iterdir() if p.is_file()) == ['cleaned.csv']


def test_cleaner_errors(bears, tmp_path):
    ds = _bears_ds(bears)
    with pytest.raises(IndexError, match='out of range'): ImageCleaner(ds, [len(ds)], bears)
    with pytest.raises(ValueError, match='is not in it'): ImageCleaner(ds, [0], bears/'black')
    with pytest.raises(ValueError, match='pairs'): ImageCleaner(ds, [(0, 1)], bears)
    with pytest.raises(ValueError, match='odd'): ImageCleaner(ds, [0, 1, 2], bears, duplicates=True)
    assert not (bears/'cleaned.csv').exists()


# --- FileDeleter --------------------------------------------------------------------------------------

def test_file_deleter_deletes_only_the_confirmed(bears):
    files = sorted(bears.rglob('*.jpg'))
    before = _hashes(bears)
    shown = np.array(files[:5], dtype=object)
    fd = FileDeleter(file_paths=shown, batch_size=3)
    assert [w.path for w in fd.batch_widgets] == files[:3]
    for k in (0, 1, 2): fd.batch_widgets[k].delete.click()
    fd.batch_widgets[1].delete.click()                   # changed my mind
    files[2].unlink()                                    # gone before Confirm
    fd.confirm_button.click()
    assert fd.deleted == [files[0]] and fd.missing == [files[2]] and 'Already gone' in fd.status.value
    assert [w.path for w in fd.batch_widgets] == files[3:5]
    fd.confirm_button.click()                            # nothing toggled: nothing deleted
    assert fd.batch_widgets == [] and fd.deleted == [files[0]]
    fd.confirm()                                         # past the end: harmless
    after = _hashes(bears)
    assert set(before) - set(after) == {files[0], files[2]}
    assert all(after[p] == before[p] for p in after)


def test_file_deleter_takes_an_itemlist(bears):
    il = ImageList.from_folder(bears)
    top = il[np.array([4, 1])]
    fd = FileDeleter(top)
    assert [w.path for w in fd.batch_widgets] == [il.items[4], il.items[1]]
    fd.batch_widgets[1].delete.click(); fd.confirm_button.click()
    assert not il.items[1].exists() and il.items[4].exists() and len(list(bears.rglob('*.jpg'))) == len(il) - 1
    assert [w.path for w in FileDeleter([str(il.items[0])]).batch_widgets] == [il.items[0]]
