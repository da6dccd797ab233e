"Multi-label interpretation end to end on planet_sample (lesson 3): a short epoch, then the per-tag counts, tables and plots."
import os
from functools import partial
from pathlib import Path

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from coursekit.datasets import URLs, untar_data
from coursekit.vision import (ImageList, ClassificationInterpretation, MultiLabelClassificationInterpretation, cnn_learner,
                              models, fbeta, get_transforms, DatasetType)


SAMPLES = Path(os.environ.get('COURSEKIT_SAMPLES', Path(__file__).resolve().parent.parent.parent/'shared'/'datasets'))


@pytest.fixture(scope='module')
def planet_learn(tmp_path_factory):
    "A resnet18 (no pretrained weights) trained one epoch on 30% of planet_sample at 32 pixels, in a private coursekit home."
    assert (SAMPLES/'planet_sample.tgz').exists(), f'the sample datasets are missing: {SAMPLES}'
    with pytest.MonkeyPatch.context() as mp:
        home = tmp_path_factory.mktemp('home')
        mp.setenv('COURSEKIT_HOME', str(home)); mp.setenv('COURSEKIT_MIRROR', str(SAMPLES))
        for v in ('COURSEKIT_DATA', 'COURSEKIT_MODELS'): mp.delenv(v, raising=False)
        n = torch.get_num_threads(); torch.set_num_threads(1); torch.manual_seed(0)
        try:
            path = untar_data(URLs.PLANET_SAMPLE)
            data = (ImageList.from_csv(path, 'labels.csv', folder='train', suffix='.jpg')
                    .filter_by_rand(0.3, seed=0).split_by_rand_pct(0.2, seed=42)
                    .label_from_df(label_delim=' ')
                    .transform(get_transforms(flip_vert=True, max_warp=0.), size=32)
                    .databunch(bs=32))
            learn = cnn_learner(data, models.resnet18, pretrained=False, metrics=[partial(fbeta, thresh=0.2)])
            learn.fit_one_cycle(1, 1e-2)
            yield learn
        finally: torch.set_num_threads(n)


@pytest.fixture(scope='module')
def interp(planet_learn):
    return ClassificationInterpretation.from_learner(planet_learn, thresh=0.2)


def test_from_learner_gives_the_multilabel_interpretation(planet_learn, interp):
    assert isinstance(interp, MultiLabelClassificationInterpretation) and interp.thresh == 0.2
    n, c = len(planet_learn.data.valid_ds), planet_learn.data.c
    assert interp.preds.shape == interp.y_true.shape == (n, c) and interp.losses.shape == (n,)
    assert ((interp.preds >= 0) & (interp.preds <= 1)).all()
    assert interp.classes == planet_learn.data.classes
    # the targets are the labels of the dataset, in order
    assert torch.equal(interp.y_true, torch.stack([planet_learn.data.valid_ds[i][1].data for i in range(n)]))
    # the per-item losses are the mean BCE over the tags of the model's outputs, as the learner computes it
    logits, targs = planet_learn.get_preds(activ=lambda o: o)
    assert torch.allclose(torch.sigmoid(logits), interp.preds) and torch.equal(targs, interp.y_true)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targs, reduction='none').mean(1)
    assert torch.allclose(interp.losses, bce, rtol=1e-4, atol=1e-5)
    # the class method of the multi-label class gives the same numbers
    again = MultiLabelClassificationInterpretation.from_learner(planet_learn, thresh=0.2)
    assert torch.allclose(again.preds, interp.preds) and torch.allclose(again.losses, interp.losses)


def test_counts_are_consistent(interp):
    n, c = interp.preds.shape
    cm = interp.confusion_matrix()
    assert cm.shape == (c, 2, 2) and (cm.sum(axis=(1, 2)) == n).all()
    support = interp.y_true.sum(0).long().numpy()
    predicted = (interp.preds > 0.2).sum(0).numpy()
    assert (cm[:, 1, 0] + cm[:, 1, 1] == support).all() and (cm[:, 0, 1] + cm[:, 1, 1] == predicted).all()
    df = interp.per_class()
    assert len(df) == c and set(df.index) == set(interp.classes)
    assert (df['tp'] + df['fn'] == df['support']).all() and (df['tp'] + df['fp'] == df['predicted']).all()
    assert list(df['support']) == sorted(df['support'], reverse=True)
    assert df[['precision', 'recall', 'fbeta']].apply(lambda s: s.between(0, 1)).all().all()
    mc = interp.most_confused()
    assert [o[2] for o in mc] == sorted((o[2] for o in mc), reverse=True)
    assert sum(o[2] for o in mc if o[1] == 'missed') == df['fn'].sum()
    assert sum(o[2] for o in mc if o[1] == 'false alarm') == df['fp'].sum()
    losses, idxs = interp.top_losses(5)
    assert len(idxs) == 5 and (losses[:-1] >= losses[1:]).all() and losses[0] == interp.losses.max()


def test_plots_run(interp):
    fig = interp.plot_top_losses(4, figsize=(6, 6), return_fig=True)
    titles = [ax.get_title().replace('\n', ' ') for ax in fig.axes if ax.get_title()]     # long lists of tags are wrapped
    assert len(titles) == 4
    loss, i = (o[0].item() for o in interp.top_losses(1))
    pred = ' '.join(c for c, on in zip(interp.classes, interp.preds[i] > 0.2) if on) or '(none)'
    assert titles[0] == f"{pred} / {' '.join(interp.ds[i][1].obj)} / {loss:.2f}"      # the worst item: predicted / actual / loss
    plt.close(fig)
    fig = interp.plot_confusion_matrix(return_fig=True)
    assert sum(1 for ax in fig.axes if ax.get_title()) == len(interp.classes)
    plt.close(fig)
    interp.plot_confusion_matrix(normalize=True); plt.close('all')
