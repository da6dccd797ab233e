"Tabular and collab on real files: the issue's faults, export and load_learner in a fresh process, data.save, and the user's DataFrame left alone."
import json, subprocess, sys, tarfile, textwrap, warnings

import numpy as np
import pandas as pd
import pytest
import torch

from coursekit.tabular import (TabularList, TabularDataBunch, tabular_learner, FillMissing, Categorify, Normalize, accuracy,
                               load_learner, load_data, DatasetType, set_seed)
from coursekit.collab import CollabDataBunch, collab_learner

CAT = ['workclass', 'education', 'marital-status', 'occupation', 'relationship', 'race']
CONT = ['age', 'fnlwgt', 'education-num']
PROCS = [FillMissing, Categorify, Normalize]


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _untar(samples, tmp_path, name):
    with tarfile.open(samples/f'{name}.tgz') as t: t.extractall(tmp_path, filter='data')
    return tmp_path/name

@pytest.fixture
def adult(samples, tmp_path):
    "The adult sample's folder and DataFrame (the first 3,000 rows: enough, and quick)."
    path = _untar(samples, tmp_path, 'adult_sample')
    return path, pd.read_csv(path/'adult.csv').iloc[:3000]

@pytest.fixture
def ml(samples, tmp_path):
    path = _untar(samples, tmp_path, 'movie_lens_sample')
    return path, pd.read_csv(path/'ratings.csv')

def _data(path, df, **kwargs):
    kwargs = {'procs': PROCS, 'cat_names': CAT, 'cont_names': CONT, 'device': 'cpu', **kwargs}
    return TabularDataBunch.from_df(path, df, 'salary', valid_idx=range(800, 1000), **kwargs)


def test_the_dataframe_is_left_as_it_was(adult):
    path, df = adult
    before = df.copy()
    data = _data(path, df, test_df=df.iloc[:50])
    learn = tabular_learner(data, layers=[20], silent=True)
    learn.predict(df.iloc[0])
    pd.testing.assert_frame_equal(df, before)
    assert 'education-num_na' in data.train_ds.cat_names and 'education-num_na' not in df


def test_a_missing_column_is_named(adult):
    path, df = adult
    with pytest.raises(KeyError, match="no column 'city'") as e: _data(path, df, cat_names=CAT + ['city'])
    assert 'workclass' in str(e.value)          # and the columns there are
    with pytest.raises(KeyError, match="no column 'age'"): _data(path, df.drop(columns='age'))


def test_text_in_a_continuous_column_is_named(adult):
    path, df = adult
    df = df.astype({'age': object}); df.loc[5, 'age'] = 'forty'
    with pytest.raises(ValueError, match=r"'age' holds 'forty' \(row 5\), which is not a number"): _data(path, df)


def test_missing_values_at_test_time_only(adult):
    path, df = adult
    assert not df.age.isna().any()
    test = df.iloc[:10].copy(); test.loc[test.index[:3], 'age'] = np.nan
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        data = _data(path, df, test_df=test)
    assert any("'age' misses 3 values, but none in the training rows" in str(x.message) for x in w)
    learn = tabular_learner(data, layers=[20], silent=True)
    preds, _ = learn.get_preds(DatasetType.Test)
    assert preds.shape == (10, 2) and torch.isfinite(preds).all()
    row = df.iloc[0].copy(); row['age'] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert torch.isfinite(learn.predict(row)[2]).all()


def test_an_all_missing_column(adult):
    path, df = adult
    with pytest.raises(ValueError, match="'fnlwgt' has no value at all in the training rows"): _data(path, df.assign(fnlwgt=np.nan))
    data = _data(path, df.assign(workclass=np.nan))              # an empty categorical column is only `#na#`
    assert data.train_ds.x.classes['workclass'] == ['#na#'] and (data.train_ds.x.codes[:, 0] == 0).all()


def test_unseen_categories_at_predict_time(adult):
    path, df = adult
    learn = tabular_learner(_data(path, df), layers=[20], silent=True)
    learn.fit(1, 1e-2)
    row = df.iloc[3].copy()
    unseen, missing = row.copy(), row.copy()
    unseen['workclass'], missing['workclass'] = 'Astronaut', np.nan
    p_unseen, p_missing = learn.predict(unseen)[2], learn.predict(missing)[2]
    assert torch.allclose(p_unseen, p_missing)                   # both are `#na#`, code 0
    assert not torch.allclose(p_unseen, learn.predict(row)[2])


def test_a_target_with_missing_values(adult):
    path, df = adult
    df = df.copy(); df.loc[[3, 7], 'salary'] = np.nan
    with pytest.raises(ValueError, match=r"item 3 \(3\) has no label in column 'salary' \(2 such rows\)"): _data(path, df)


def test_an_empty_frame(adult):
    path, df = adult
    with pytest.raises(ValueError, match='the DataFrame has no rows'): _data(path, df.iloc[:0])
    with pytest.raises(ValueError, match='the DataFrame has no rows'): CollabDataBunch.from_df(pd.DataFrame(columns=['u', 'i', 'r']))


def test_unseen_users_and_items_at_predict_time(ml):
    path, ratings = ml
    set_seed(0)
    data = CollabDataBunch.from_df(ratings, seed=42, path=path, device='cpu')
    learn = collab_learner(data, n_factors=10, y_range=[0, 5.5], silent=True)
    learn.fit_one_cycle(1, 5e-3)
    known = ratings.iloc[0]
    for user, item in [(10**9, known.movieId), (known.userId, 10**9), (10**9, 10**9)]:
        pred = learn.predict({'userId': user, 'movieId': item})[0]
        assert 0 < pred.obj < 5.5
    with pytest.raises(KeyError, match='not in the training set'): learn.bias([10**9])


_PREDICT = textwrap.dedent('''
    import json, sys, warnings
    import pandas as pd, torch
    assert not torch.cuda.is_available()
    from coursekit.tabular import load_learner
    learn = load_learner(sys.argv[1])
    rows = pd.read_json(sys.argv[2], orient='records')
    print(json.dumps([learn.predict(r)[2].tolist() for _, r in rows.iterrows()]))
''')

def _fresh_predictions(path, rows):
    "Predictions for `rows` by `load_learner(path)` in a new CPU-only process."
    f = path/'rows.json'; rows.to_json(f, orient='records')
    r = subprocess.run([sys.executable, '-c', _PREDICT, str(path), str(f)], capture_output=True, text=True,
                       env={**__import__('os').environ, 'CUDA_VISIBLE_DEVICES': ''})
    assert r.returncode == 0, r.stderr[-3000:]
    return torch.tensor(json.loads(r.stdout.strip().splitlines()[-1]))

def test_tabular_export_predicts_the_same_in_a_fresh_process(adult):
    path, df = adult
    learn = tabular_learner(_data(path, df), layers=[50, 20], metrics=accuracy, silent=True)
    learn.fit(1, 1e-2)
    learn.export()
    state = torch.load(path/'export.pkl', weights_only=True)         # plain data: no pickled class or function
    assert state['model_recipe']['fn'] == 'coursekit.tabular.learner:tabular_model'
    rows = df.iloc[[0, 5, 9]]
    mine = torch.stack([learn.predict(r)[2] for _, r in rows.iterrows()])
    assert torch.allclose(_fresh_predictions(path, rows), mine, atol=1e-5)


def test_collab_export_predicts_the_same_in_a_fresh_process(ml):
    path, ratings = ml
    data = CollabDataBunch.from_df(ratings, seed=42, path=path, device='cpu')
    learn = collab_learner(data, n_factors=10, y_range=[0, 5.5], silent=True)
    learn.fit(1, 5e-3)
    learn.export()
    rows = ratings.iloc[[0, 1, 2]][['userId', 'movieId']]
    mine = torch.stack([learn.predict(r)[2] for _, r in rows.iterrows()])
    assert torch.allclose(_fresh_predictions(path, rows), mine, atol=1e-5)
    loaded = load_learner(path)                      # still a CollabLearner: the lesson's bias and weight work
    movies = ratings.movieId.unique()[:5]
    assert type(loaded) is type(learn) and torch.equal(loaded.bias(movies), learn.bias(movies))


def test_save_and_load_data(adult):
    path, df = adult
    data = _data(path, df, test_df=df.iloc[:30])
    data.save('adult_data.pkl')
    d2 = load_data(path, 'adult_data.pkl', bs=32, device='cpu')
    assert torch.equal(d2.train_ds.x.codes, data.train_ds.x.codes) and torch.equal(d2.valid_ds.x.conts, data.valid_ds.x.conts)
    assert d2.train_ds.cat_names == data.train_ds.cat_names and d2.classes == data.classes and len(d2.test_ds) == 30
    (c1, x1), y1 = data.one_batch(DatasetType.Valid); (c2, x2), y2 = d2.one_batch(DatasetType.Valid)
    assert torch.equal(c1[:32], c2) and torch.equal(y1[:32], y2)
    learn = tabular_learner(d2, layers=[20], silent=True)
    learn.fit(1, 1e-2)
    assert torch.isfinite(learn.predict(df.iloc[0])[2]).all()


def test_predictions_come_in_dataset_order(adult):
    path, df = adult
    data = _data(path, df, test_df=df.iloc[:70])
    learn = tabular_learner(data, layers=[20], silent=True)
    for ds_type, ds in ((DatasetType.Valid, data.valid_ds), (DatasetType.Train, data.train_ds)):
        _, targs = learn.get_preds(ds_type)
        assert torch.equal(targs, ds.y.tensors())
    assert learn.get_preds(DatasetType.Test)[0].shape == (70, 2)
