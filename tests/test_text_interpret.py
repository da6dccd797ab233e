"Text interpretation beyond the notebook: texts longer than max_len, the model's state left as it was, show_top_losses, CUDA."
import random

import pandas as pd
import pytest
import torch

from coursekit.core import set_seed
from coursekit.text.data import TextList
from coursekit.text.learner import text_classifier_learner
from coursekit.text.models import AWD_LSTM
from coursekit.text.transform import BaseTokenizer, Tokenizer
from coursekit.text.interpret import TextClassificationInterpretation

TINY = dict(emb_sz=8, n_hid=12, n_layers=2, pad_token=1, bidir=False, output_p=0.1, hidden_p=0.1, input_p=0.1,
            embed_p=0.02, weight_p=0.1)
GOOD, BAD, FILL = ['great', 'fine', 'superb', 'lovely'], ['awful', 'dull', 'boring', 'poor'], ['the', 'film', 'was', 'a', 'plot']


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make_learner(tmp_path, device=None):
    "A tiny classifier (bptt=10, max_len=20) trained for an epoch on 60 made-up reviews of 5 to 30 words."
    rng = random.Random(0)
    rows = []
    for i in range(60):
        label = ['negative', 'positive'][i % 2]
        words = [rng.choice((GOOD if label == 'positive' else BAD) if rng.random() < 0.3 else FILL) for _ in range(rng.randint(5, 30))]
        rows.append((label, ' '.join(words)))
    df = pd.DataFrame(rows, columns=['label', 'text'])
    set_seed(0)
    data = (TextList.from_df(df, tmp_path, cols='text', tokenizer=Tokenizer(BaseTokenizer, n_cpus=1))
            .split_by_idx(range(48, 60)).label_from_df(cols='label').databunch(bs=8, device=device))
    learn = text_classifier_learner(data, AWD_LSTM, bptt=10, max_len=20, config=TINY, pretrained=False)
    learn.fit(1, 1e-2)
    return learn


@pytest.fixture(scope='module')
def learn(one_thread, tmp_path_factory):
    return make_learner(tmp_path_factory.mktemp('interp'))


def hooks(model):
    "Every hook on every module of `model`."
    return [(name, len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks), len(m._backward_pre_hooks))
            for name, m in model.named_modules()]


def test_long_text_weights_only_the_last_chunks(learn):
    "55 tokens, bptt=10, max_len=20: chunks end at 5, 15, ..., 55; only the last two (tokens 35 to 54) get gradients."
    interp = TextClassificationInterpretation.from_learner(learn)
    text = ' '.join(['great', 'film', 'awful', 'plot', 'the', 'was'] * 9)       # 54 words and xxbos
    t, attn = interp.intrinsic_attention(text)
    assert len(t.data) == len(attn) == 55
    assert (attn[:35] == 0).all()
    assert (attn[35:] > 0).all() and attn.max() == 1.
    # a text as long as max_len: every token is weighed
    t, attn = interp.intrinsic_attention(' '.join(['great', 'film'] * 9 + ['dull']))
    assert len(attn) == 20 and (attn > 0).all()


def test_state_left_as_it_was(learn):
    "No hook stays; train/eval modes (even mixed ones), requires_grad and the parameters' grads are unchanged, after an error too."
    interp = TextClassificationInterpretation.from_learner(learn)
    model = learn.model
    hooks0 = hooks(model)
    learn.freeze()
    model.train(); model[1].eval()
    modes = [m.training for m in model.modules()]
    req = [p.requires_grad for p in model.parameters()]
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    w_train = interp.intrinsic_attention('great film , awful plot')[1]
    with pytest.raises(ValueError, match='out of range'): interp.intrinsic_attention('great film', class_id=5)
    with torch.no_grad(): w_nograd = interp.intrinsic_attention('great film , awful plot')[1]
    model.eval()
    w_eval = interp.intrinsic_attention('great film , awful plot')[1]
    assert all(not m.training for m in model.modules())
    model.train(); model[1].eval()
    assert torch.equal(w_train, w_nograd) and torch.equal(w_train, w_eval)     # evaluation mode whatever the model's
    assert hooks(model) == hooks0
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == req
    assert all((g is None and p.grad is None) or torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))
    learn.unfreeze(); model.train()


def test_show_top_losses_rows(learn, capsys):
    interp = TextClassificationInterpretation.from_learner(learn)
    df = interp.show_top_losses(4, max_len=3, return_df=True)
    assert len(df) == 4 and list(df.columns) == ['Text', 'Prediction', 'Actual', 'Loss', 'Probability']
    assert list(df['Loss']) == sorted(df['Loss'], reverse=True) and df['Loss'].iloc[0] == interp.losses.max()
    for i, row in df.iterrows():
        assert row['Text'] == ' '.join(learn.data.valid_ds.x.get(i).text.split(' ')[:3])
    assert len(interp.show_top_losses(100, return_df=True)) == len(learn.data.valid_ds)
    assert interp.show_top_losses(2) is None
    assert 'Prediction' in capsys.readouterr().out                 # shown (printed outside a notebook)


def test_html(learn):
    interp = TextClassificationInterpretation.from_learner(learn)
    h = interp.html_intrinsic_attention('great <b> awful', sep='|', cmap='Reds')
    assert h.count('<span title=') == 4 and '</span>|<span' in h and 'rgba(' in h and 'np.' not in h
    assert h.count('>xxunk</span>') == 1 and '<b>' not in h                 # the unknown word


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
def test_cuda(tmp_path):
    "On a GPU (where cuDNN's LSTM computes gradients only in training mode) the weights come out, and the model is left in its mode."
    learn = make_learner(tmp_path, device='cuda')
    assert next(learn.model.parameters()).is_cuda
    interp = TextClassificationInterpretation.from_learner(learn)
    text = ' '.join(['great', 'film', 'awful', 'plot', 'the', 'was'] * 9)
    for train in (True, False):
        learn.model.train(train)
        t, attn = interp.intrinsic_attention(text)
        assert len(attn) == 55 and (attn[:35] == 0).all() and (attn[35:] > 0).all() and attn.max() == 1.
        assert all(m.training == train for m in learn.model.modules())
