"""Targets that move with their images (masks, points), multi-label CSVs, and image files of every colour mode: bad input and whole chains."""
import numpy as np
import pandas as pd
import PIL.Image
import pytest
import torch
import torch.nn.functional as F
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt

from coursekit.vision import (ImageList, SegmentationItemList, PointsItemList, ImagePoints, FlowField, ImageSegment, untar_data, URLs,
                              get_transforms, zoom, unet_learner, models, load_learner, imagenet_stats, DatasetType)
from coursekit.vision.transform import ImageBatchTransform


def _save_modes(folder):
    "The same picture as a grayscale JPEG, a CMYK JPEG, an RGBA PNG, a palette PNG with transparency and an RGB JPEG."
    folder.mkdir(parents=True, exist_ok=True)
    rgb = PIL.Image.fromarray((np.random.default_rng(0).random((24, 32, 3))*255).astype(np.uint8))
    rgb.convert('L').save(folder/'gray.jpg')
    rgb.convert('CMYK').save(folder/'cmyk.jpg')
    rgb.convert('RGBA').save(folder/'rgba.png')
    p = rgb.convert('P'); p.info['transparency'] = 0; p.save(folder/'palette.png', transparency=0)
    rgb.save(folder/'rgb.jpg')
    return rgb


def test_every_colour_mode_opens_as_rgb(tmp_path):
    _save_modes(tmp_path/'imgs')
    assert PIL.Image.open(tmp_path/'imgs'/'cmyk.jpg').mode == 'CMYK'
    il = ImageList.from_folder(tmp_path/'imgs')
    for i in range(len(il)): assert il.get(i).shape == (3, 24, 32), il.items[i]
    data = il.split_none().label_const(0).transform(size=16).databunch(bs=5, num_workers=0)
    assert data.one_batch()[0].shape == (5, 3, 16, 16)


def test_planet_jpegs_are_cmyk_and_open_as_rgb():
    path = untar_data(URLs.PLANET_SAMPLE)
    f = sorted((path/'train').glob('*.jpg'))[0]
    assert PIL.Image.open(f).mode == 'CMYK'
    il = ImageList.from_csv(path, 'labels.csv', folder='train', suffix='.jpg')
    x = il.get(0)
    assert x.shape == (3, 256, 256) and 10 < x.px.float().mean() < 245


def test_label_file_naming_a_missing_image(tmp_path):
    _save_modes(tmp_path/'train')
    pd.DataFrame({'image_name': ['rgb', 'gone'], 'tags': ['a', 'b']}).to_csv(tmp_path/'labels.csv', index=False)
    with pytest.raises(FileNotFoundError, match=r'gone\.jpg'):
        ImageList.from_csv(tmp_path, 'labels.csv', folder='train', suffix='.jpg')


def test_multilabel_csv_empty_tags_and_a_tag_only_in_validation(tmp_path):
    _save_modes(tmp_path/'train')
    names = ['gray', 'cmyk', 'rgb']
    pd.DataFrame({'image_name': names, 'tags': ['haze primary', '', 'primary  haze']}).to_csv(tmp_path/'labels.csv', index=False)
    src = ImageList.from_csv(tmp_path, 'labels.csv', folder='train', suffix='.jpg').split_by_idx([2]).label_from_df(label_delim=' ')
    assert src.train.y.classes == ['haze', 'primary'] and src.train.y.data(1).sum() == 0       # an empty cell: no tag, no '' class
    pd.DataFrame({'image_name': names, 'tags': ['haze', 'haze primary', 'clear']}).to_csv(tmp_path/'labels.csv', index=False)
    with pytest.raises(ValueError, match=r"'clear'.*not one of the classes.*classes="):
        ImageList.from_csv(tmp_path, 'labels.csv', folder='train', suffix='.jpg').split_by_idx([2]).label_from_df(label_delim=' ')


def test_points_that_leave_the_image_keep_their_coordinates(tmp_path):
    (tmp_path/'imgs').mkdir()
    for k in range(6): PIL.Image.new('RGB', (40, 30)).save(tmp_path/'imgs'/f'{k}.png')
    corner = lambda o: torch.tensor([[1., 1.], [15., 20.]])        # one point near a corner, one in the middle
    data = (PointsItemList.from_folder(tmp_path/'imgs').split_by_idx([0]).label_from_func(corner)
            .transform(([zoom(scale=(2., 2.), row_pct=(0.5, 0.5), col_pct=(0.5, 0.5))], []), size=(30, 40), tfm_y=True)
            .databunch(bs=5, num_workers=0))
    _, yb = data.one_batch()
    assert yb.shape == (5, 2, 2)                                     # no point dropped: every item keeps its 2 points
    assert (yb[:, 0].abs() > 1).all()                                # the corner point left the frame, zoomed twice about the centre
    torch.testing.assert_close(yb[:, 0], torch.tensor([2*1/29 - 1, 2*1/39 - 1]).expand(5, 2)*2)
    ax = ImagePoints(FlowField((30, 40), yb[0]), scale=False).show()
    assert len(ax.collections[0].get_offsets()) == 1                 # only the point inside is drawn
    plt.close('all')


def test_masks_and_images_are_resampled_once_per_batch(monkeypatch):
    calls = []
    real = F.grid_sample
    monkeypatch.setattr(F, 'grid_sample', lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    xb = torch.randint(0, 255, (8, 3, 24, 32), dtype=torch.uint8); yb = torch.randint(0, 5, (8, 1, 24, 32), dtype=torch.uint8)
    x, y = ImageBatchTransform(get_transforms()[0], tfm_y=True, y_kind='mask')((xb, yb))
    assert calls == [(8, 3, 24, 32), (8, 1, 24, 32)]                 # the warp, rotation, zoom and flip: one grid for both
    assert y.dtype == torch.int64 and set(y.unique().tolist()) <= set(range(5))


def test_camvid_unet_trains_exports_and_predicts_a_mask(tmp_path):
    path = untar_data(URLs.CAMVID_TINY)
    codes = np.loadtxt(path/'codes.txt', dtype=str)
    get_y_fn = lambda x: path/'labels'/f'{x.stem}_P{x.suffix}'
    data = (SegmentationItemList.from_folder(path/'images').filter_by_rand(0.2, seed=0).split_by_rand_pct(0.25, seed=1)
            .label_from_func(get_y_fn, classes=codes).transform(get_transforms(), size=(64, 96), tfm_y=True)
            .databunch(bs=4, num_workers=0, path=tmp_path).normalize(imagenet_stats))
    learn = unet_learner(data, models.resnet18, pretrained=False)
    learn.fit_one_cycle(1, 1e-3)
    preds, targs = learn.get_preds()
    assert preds.shape[1:] == (32, 64, 96) and targs.shape[1:] == (1, 64, 96)
    learn.show_results(rows=2); plt.close('all')
    learn.export()
    img = data.valid_ds.x.items[0]
    mask, dec, probs = load_learner(tmp_path).predict(img)
    assert isinstance(mask, ImageSegment) and mask.shape == (1, 64, 96) and probs.shape == (32, 64, 96)
    torch.testing.assert_close(probs, learn.predict(img)[2])


def test_missing_codes_file_says_which(tmp_path):
    path = untar_data(URLs.CAMVID_TINY)
    with pytest.raises(FileNotFoundError, match='codes.txt'):
        np.loadtxt(tmp_path/'codes.txt', dtype=str)                  # the lesson's line, on a folder without the file
    with pytest.raises(ValueError, match='classes=codes'):
        SegmentationItemList.from_folder(path/'images').split_by_rand_pct(0.2).label_from_func(lambda x: path/'labels'/f'{x.stem}_P{x.suffix}')


def test_the_course_oldest_spellings_label_then_split(tmp_path):
    from coursekit.vision import ImageFileList, SegmentationDataset
    path = untar_data(URLs.PLANET_SAMPLE)
    tfms = get_transforms(flip_vert=True, max_lighting=0.1, max_zoom=1.05, max_warp=0.)
    data = (ImageFileList.from_folder(path).label_from_csv('labels.csv', sep=' ', folder='train', suffix='.jpg')
            .random_split_by_pct(0.2).datasets().transform(tfms, size=32).databunch(bs=16, num_workers=0))
    xb, yb = data.one_batch()
    assert xb.shape == (16, 3, 32, 32) and yb.shape == (16, data.c) and len(data.valid_ds) == 200
    cam = untar_data(URLs.CAMVID_TINY)
    codes = np.loadtxt(cam/'codes.txt', dtype=str)
    src = (ImageFileList.from_folder(cam/'images').label_from_func(lambda x: cam/'labels'/f'{x.stem}_P{x.suffix}')
           .random_split_by_pct(0.2).datasets(SegmentationDataset, classes=codes))
    data = src.transform(get_transforms(), size=32, tfm_y=True).databunch(bs=4, num_workers=0)
    xb, yb = data.one_batch()
    assert yb.shape == (4, 1, 32, 32) and data.c == 32 and yb.dtype == torch.int64
