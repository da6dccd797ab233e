"Text data: saving and loading, the language model's stream on real data, and bad input."
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from coursekit.datasets import untar_data, URLs
from coursekit.data import DatasetType, load_data
from coursekit.data_block import ItemLists
from coursekit.text.data import TextList, TextDataBunch, TextLMDataBunch, TextClasDataBunch


@pytest.fixture(scope='module')
def df():
    return pd.read_csv(untar_data(URLs.IMDB_SAMPLE)/'texts.csv').iloc[:60]


def test_save_and_load_data_round_trip(df, tmp_path):
    data = TextList.from_df(df, tmp_path, cols='text').split_by_idx(range(50, 60)).label_from_df(cols='label').databunch(bs=4)
    data.save('tmp_clas')
    d2 = load_data(tmp_path, 'tmp_clas', bs=2)
    assert isinstance(d2, TextClasDataBunch) and d2.vocab.itos == data.vocab.itos and d2.train_dl.batch_size == 2
    assert d2.train_ds[3][0].text == data.train_ds[3][0].text and d2.classes == data.classes
    assert (TextClasDataBunch.load(tmp_path, 'tmp_clas', bs=3).valid_ds.x.lengths() == data.valid_ds.x.lengths()).all()
    lm = TextList.from_df(df, tmp_path, cols='text').split_by_idx(range(50, 60)).label_for_lm().databunch(bs=4, bptt=12)
    lm.save()
    d3 = TextLMDataBunch.load(tmp_path, bs=2, bptt=7)
    assert isinstance(d3, TextLMDataBunch) and d3.bptt == 7 and d3.one_batch(DatasetType.Valid)[0].shape == (7, 2)
    assert torch.equal(d3.train_ds.x.ids, lm.train_ds.x.ids)


def test_lm_stream_covers_the_texts_in_columns(df, tmp_path):
    data = TextList.from_df(df, tmp_path, cols='text').split_by_idx(range(50, 60)).label_for_lm().databunch(bs=5, bptt=15)
    ids = data.valid_ds.x.ids
    n = len(ids)//5
    xs = torch.cat([x for x, _ in data.valid_dl])
    assert torch.equal(xs[:, 2], ids[2*n:2*n + len(xs)])           # column 2 is the third fifth of the stream, in order
    lens = [x.shape[0] for x, _ in data.train_dl]
    assert len(lens) <= len(data.train_dl) and len(set(lens)) > 1  # training windows vary in length
    with pytest.raises(ValueError, match='bs=4096'):
        TextList.from_df(df, tmp_path, cols='text').split_by_idx(range(50, 60)).label_for_lm().databunch(bs=4096)


def test_text_databunch_from_csv_df_and_folder(df, tmp_path):
    df.to_csv(tmp_path/'texts.csv', index=False)
    data = TextDataBunch.from_csv(tmp_path, 'texts.csv', seed=0, bs=8)
    assert isinstance(data, TextClasDataBunch) and data.classes == ['negative', 'positive'] and len(data.valid_ds) == 13
    lm = TextLMDataBunch.from_csv(tmp_path, 'texts.csv', seed=0, bs=4)
    assert isinstance(lm, TextLMDataBunch)
    for i, (label, text) in enumerate(zip(df.label, df.text)):
        f = tmp_path/'imdb'/('valid' if i >= 50 else 'train')/label[:3]/f'{i}.txt'
        f.parent.mkdir(parents=True, exist_ok=True); f.write_text(text)
    (tmp_path/'imdb'/'train'/'unsup').mkdir(); (tmp_path/'imdb'/'train'/'unsup'/'u.txt').write_text('No label here.')
    folder = TextDataBunch.from_folder(tmp_path/'imdb', classes=['neg', 'pos'], bs=4)
    assert folder.classes == ['neg', 'pos'] and len(folder.train_ds) + len(folder.valid_ds) == len(df)


def test_filter_missing_y(df, tmp_path):
    for i, (label, text) in enumerate(zip(df.label, df.text)):
        f = tmp_path/('test' if i >= 50 else 'train')/label[:3]/f'{i}.txt'
        f.parent.mkdir(parents=True, exist_ok=True); f.write_text(text)
    (tmp_path/'train'/'unsup').mkdir(); (tmp_path/'train'/'unsup'/'9.txt').write_text('Unlabelled.')
    src = TextList.from_folder(tmp_path).split_by_folder(valid='test').label_from_folder(classes=['neg', 'pos'])
    with pytest.raises(ValueError, match=r"label 'unsup'.*filter_missing_y"):
        src.databunch(bs=4)
    data = src.filter_missing_y().databunch(bs=4)
    assert len(data.train_ds) == 50 and 'unsup' not in data.classes


def test_bad_text_input(df, tmp_path):
    # empty and whitespace-only texts are kept as xxbos, with a warning that names the first
    with pytest.warns(UserWarning, match=r'2 of 5 texts are empty.*item 1'):
        src = TextList(['A film.', '', 'Another film.', '   \n ', 'Good.', 'Bad.'], path=tmp_path).split_by_idx([5])
    assert src.train.get(1).text == 'xxbos'
    # a missing text (NaN in the CSV) names the row
    bad = df.copy(); bad.loc[7, 'text'] = np.nan
    with pytest.raises(ValueError, match='item 7'):
        TextList.from_df(bad, tmp_path, cols='text').split_by_idx(range(50, 60))
    # a label column with NaN names the item
    bad = df.copy(); bad.loc[3, 'label'] = np.nan
    with pytest.raises(ValueError, match='item 3.*no label'):
        TextList.from_df(bad, tmp_path, cols='text').split_by_idx(range(50, 60)).label_from_df(cols='label')
    # a class only in the validation set
    bad = df.copy(); bad.loc[55, 'label'] = 'neutral'
    with pytest.raises(ValueError, match=r"'neutral'.*classes="):
        TextList.from_df(bad, tmp_path, cols='text').split_by_idx(range(50, 60)).label_from_df(cols='label')
    # a text of only unknown words
    src = TextList.from_df(df, tmp_path, cols='text').split_by_idx(range(50, 60))
    assert src.train.coerce('zzyzx qwertyuiop').text == 'xxbos xxunk xxunk'


def test_files_with_bad_bytes_and_html_entities(tmp_path):
    (tmp_path/'train'/'a').mkdir(parents=True); (tmp_path/'valid'/'a').mkdir(parents=True)
    (tmp_path/'train'/'a'/'latin1.txt').write_bytes('Un caf\xe9 cr\xe8me, tr\xe8s bon.'.encode('latin-1'))
    (tmp_path/'train'/'a'/'html.txt').write_text('Great &amp; moving.<br /><br />I &quot;loved&quot; it &#39;a lot&#39;.')
    (tmp_path/'valid'/'a'/'v.txt').write_text('Fine.')
    with pytest.warns(UserWarning, match='latin1.txt'):
        src = TextList.from_folder(tmp_path, min_freq=1).split_by_folder()
    texts = [src.train.get(i).text for i in range(2)]
    html = [t for t in texts if 'moving' in t][0]
    assert '&' in html and '"' in html and "'" in html and 'amp' not in html and 'br' not in html.split(' ')
    assert any('\ufffd' in t for t in texts)
