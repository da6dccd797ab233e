"Text learners: predictions in dataset order, pretrained weights through a mirror, encoders and vocabularies, export, bad input."
import pickle, tarfile

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from coursekit.datasets import untar_data, URLs, DownloadError
from coursekit.learner import Learner, load_learner
from coursekit.text.data import TextList
from coursekit.text.models import AWD_LSTM, awd_lstm_lm_config, awd_lstm_clas_config
from coursekit.text.learner import language_model_learner, text_classifier_learner, LanguageLearner, RNNLearner

TINY = dict(awd_lstm_lm_config, emb_sz=16, n_hid=24, n_layers=2)
TINY_CLAS = dict(awd_lstm_clas_config, emb_sz=16, n_hid=24, n_layers=2)


@pytest.fixture(scope='module')
def df():
    return pd.read_csv(untar_data(URLs.IMDB_SAMPLE)/'texts.csv').iloc[:60]


def _lm(df, path, **kw):
    return TextList.from_df(df, path, cols='text', **kw).split_by_idx(range(50, 60)).label_for_lm().databunch(bs=4, bptt=20)


class _CountWords(nn.Module):
    "Outputs, for each text of a batch, (number of real tokens, first real token): the order of the predictions shows."
    def forward(self, x):
        real = x != 1
        first = torch.gather(x, 0, real.float().argmax(0, keepdim=True))[0]
        return torch.stack([real.sum(0).float(), first.float()], 1)


def test_get_preds_in_dataset_order_although_batches_are_sorted(tmp_path):
    rng = np.random.default_rng(0)
    words = ['w%d' % i for i in range(50)]
    lens = rng.permutation(np.arange(1, 61))                 # 60 texts of shuffled lengths 1..60
    texts = [' '.join(rng.choice(words, n)) for n in lens]
    data = (TextList(texts, path=tmp_path, min_freq=1).split_by_idx(range(40, 60))
            .label_from_func(lambda t: 'ab'[len(t) % 2]).databunch(bs=7))
    xb, _ = next(iter(data.valid_dl))
    assert (xb != 1).sum(0).tolist() == sorted((xb != 1).sum(0).tolist(), reverse=True)    # the loader sorts by length
    learn = Learner(data, _CountWords(), loss_func=lambda out, y: out.sum()*0)
    for ds_type, ds in ((1, data.valid_ds), (0, data.train_ds)):
        preds, targs = learn.get_preds(ds_type, activ=lambda o: o)
        assert preds[:, 0].long().tolist() == ds.x.lengths().tolist()                       # +1: xxbos counts
        assert preds[:, 1].long().tolist() == [int(ds.x.item_ids(i)[0]) for i in range(len(ds))]
        assert targs.tolist() == ds.y.tensors().tolist()
    assert (preds[:, 0] - 1).long().tolist() == lens[:40].tolist()


def _fake_wt103(tmp_path, monkeypatch, data):
    "A 'pretrained' WT103 archive made of a tiny LM trained here, served by a mirror folder; returns that LM."
    src = language_model_learner(data, AWD_LSTM, config=TINY, pretrained=False)
    src.fit(1, 1e-2)
    itos = list(reversed(data.vocab.itos))                   # another vocabulary order: convert_weights must remap rows
    perm = [data.vocab.stoi[w] for w in itos]
    sd = {k: (v[perm] if k in ('0.encoder.weight', '0.encoder_dp.emb.weight', '1.decoder.weight', '1.decoder.bias') else v)
          for k, v in src.model.state_dict().items()}
    folder = tmp_path/'build'/'wt103-fwd'; folder.mkdir(parents=True)
    torch.save(sd, folder/'lstm_fwd.pth')
    pickle.dump(itos, open(folder/'itos_wt103.pkl', 'wb'))
    (tmp_path/'mirror').mkdir()
    with tarfile.open(tmp_path/'mirror'/'wt103-fwd.tgz', 'w:gz') as t: t.add(folder, 'wt103-fwd')
    monkeypatch.setenv('COURSEKIT_MIRROR', str(tmp_path/'mirror'))
    monkeypatch.setenv('COURSEKIT_MODELS', str(tmp_path/'models'))
    return src


def test_pretrained_weights_through_the_download_path(df, tmp_path, monkeypatch):
    data = _lm(df, tmp_path)
    src = _fake_wt103(tmp_path, monkeypatch, data)
    learn = language_model_learner(data, AWD_LSTM, config=TINY, drop_mult=0.3)          # pretrained=True: download, convert, load
    assert torch.equal(learn.model[0].encoder.weight, src.model[0].encoder.weight)
    assert torch.equal(learn.model[1].decoder.weight, learn.model[0].encoder.weight)       # still tied
    assert not any(p.requires_grad for p in learn.layer_groups[0].parameters())              # frozen but the last group
    clas_data = (TextList.from_df(df, tmp_path, cols='text', vocab=data.vocab).split_by_idx(range(50, 60))
                 .label_from_df(cols='label').databunch(bs=4))
    clas = text_classifier_learner(clas_data, AWD_LSTM, config=TINY_CLAS)
    assert torch.equal(clas.model[0].module.encoder.weight, src.model[0].encoder.weight)


def test_pretrained_offline_says_what_to_do(df, tmp_path, monkeypatch):
    data = _lm(df, tmp_path)
    monkeypatch.setenv('COURSEKIT_MIRROR', str(tmp_path/'empty'))
    monkeypatch.setenv('COURSEKIT_MODELS', str(tmp_path/'models'))
    with pytest.raises(DownloadError, match=r'(?s)pretrained language model could not be fetched.*pretrained=False.*wt103-fwd'):
        language_model_learner(data, AWD_LSTM, config=TINY)
    with pytest.raises(FileNotFoundError, match='pretrained_fnames'):
        language_model_learner(data, AWD_LSTM, config=TINY, pretrained_fnames=('lstm', 'itos'))


def test_load_encoder_checks_the_vocabulary(df, tmp_path):
    data = _lm(df, tmp_path)
    lm = language_model_learner(data, AWD_LSTM, config=TINY, pretrained=False)
    lm.save_encoder('enc')
    other = (TextList.from_df(df.iloc[:30], tmp_path, cols='text').split_by_idx(range(25, 30))
             .label_from_df(cols='label').databunch(bs=4))
    assert len(other.vocab.itos) != len(data.vocab.itos)
    clas = text_classifier_learner(other, AWD_LSTM, config=TINY_CLAS, pretrained=False)
    with pytest.raises(ValueError, match=rf'vocabulary of {len(data.vocab.itos)} tokens.*vocab=data_lm.vocab'):
        clas.load_encoder('enc')
    with pytest.raises(FileNotFoundError, match='save_encoder'):
        clas.load_encoder('nothing')


def test_predict_empty_and_long_texts_and_export(df, tmp_path):
    data = _lm(df, tmp_path)
    lm = language_model_learner(data, AWD_LSTM, config=TINY, pretrained=False)
    assert len(lm.predict('', 4).split(' ')) == 4                       # from xxbos alone
    clas_data = (TextList.from_df(df, tmp_path, cols='text', vocab=data.vocab).split_by_idx(range(50, 60))
                 .label_from_df(cols='label').databunch(bs=4))
    clas = text_classifier_learner(clas_data, AWD_LSTM, config=TINY_CLAS, pretrained=False, bptt=10, max_len=30)
    with pytest.raises(ValueError, match='empty'): clas.predict('')
    long_text = ' '.join(df.text.iloc[:5])                                 # far longer than max_len
    cat, idx, probs = clas.predict(long_text)
    assert str(cat) in ('negative', 'positive') and abs(float(probs.sum()) - 1) < 1e-5
    clas.fit(1, 1e-3)                                                       # training reads long texts in bptt chunks
    for learn, cls in ((lm, LanguageLearner), (clas, RNNLearner)):
        learn.export()
        back = load_learner(tmp_path)
        assert type(back) is cls
        if cls is RNNLearner:
            learn.model.eval(); back.model.eval()
            assert torch.allclose(back.predict(long_text)[2], learn.predict(long_text)[2], atol=1e-5)
        else: assert back.predict('The film', 3).startswith('The film ')
