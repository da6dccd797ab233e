"Tokenizing in real worker processes on the IMDB sample, the errors for missing texts, non-ASCII text, pickling."
import os, pickle, tarfile

import pandas as pd
import pytest
import torch

from coursekit.text import transform
from coursekit.text.transform import Tokenizer, Vocab, text_spec_tok


@pytest.fixture
def reviews(samples, tmp_path):
    "The IMDB sample's DataFrame (1,000 reviews)."
    with tarfile.open(samples/'imdb_sample.tgz') as t: t.extractall(tmp_path, filter='data')
    return pd.read_csv(tmp_path/'imdb_sample'/'texts.csv')


def _with_pid(toks):
    "A post-rule that appends the id of the process that ran it."
    return toks + [str(os.getpid())]


def test_workers_give_the_same_tokens_in_order(reviews):
    texts = reviews.text.tolist()[:600]
    serial = Tokenizer(n_cpus=1).process_all(texts)
    tok = Tokenizer(n_cpus=2, post_rules=transform.default_post_rules + [_with_pid])
    par = tok.process_all(texts)
    pids = {toks[-1] for toks in par}
    assert str(os.getpid()) not in pids and len(pids) == 2        # two worker processes did the work
    assert [toks[:-1] for toks in par] == serial
    assert serial[0][:6] == ['xxmaj', 'un', '-', 'bleeping', '-', 'believable']


def test_workers_started_fresh(reviews, monkeypatch):
    "Where the workers cannot be forked (spawn, forkserver), the Tokenizer travels to them pickled."
    monkeypatch.setattr(transform, '_start_method', lambda: 'spawn')
    texts = reviews.text.tolist()[:250]
    assert Tokenizer(n_cpus=2).process_all(texts) == Tokenizer(n_cpus=1).process_all(texts)
    with pytest.raises(TypeError, match='does not pickle.*n_cpus=1'):
        Tokenizer(n_cpus=2, post_rules=[lambda toks: toks]).process_all(texts)


def test_small_lists_stay_in_this_process():
    tok = Tokenizer(n_cpus=2, post_rules=[_with_pid])
    assert {t[-1] for t in tok.process_all(['a b'] * 10)} == {str(os.getpid())}


@pytest.mark.parametrize('bad', [float('nan'), None, 3])
def test_a_missing_text_is_named(bad):
    texts = pd.Series(['a fine review'] * 300 + [bad], dtype=object)
    with pytest.raises(TypeError, match=f'Text 300 is {bad!r}'): Tokenizer(n_cpus=2).process_all(texts)


def test_missing_text_from_a_csv(tmp_path):
    (tmp_path/'texts.csv').write_text('label,text\npos,Great film\nneg,\n')
    df = pd.read_csv(tmp_path/'texts.csv')
    with pytest.raises(TypeError, match=r"Text 1 is nan \(float\).*fillna"): Tokenizer().process_all(df.text)
    assert Tokenizer().process_all(df.text.fillna('')) == [['xxmaj', 'great', 'film'], []]


def test_entities_and_non_ascii_survive():
    text = 'Caf&eacute; cr\u00e8me, na\u00efve &amp; \u00fcber-cool \U0001F600\U0001F600 &#8220;Amélie&#8221; \u65e5\u672c<br />Fin'
    want = ['xxmaj', 'café', 'crème', ',', 'naïve', '&', 'über', '-', 'cool', '\U0001F600', '\U0001F600', '\u201c',
            'xxmaj', 'amélie', '\u201d', '\u65e5\u672c', '\n', 'xxmaj', 'fin']
    serial = Tokenizer(n_cpus=1).process_all([text] * 300)
    assert serial[0] == want
    assert Tokenizer(n_cpus=2).process_all([text] * 300) == serial      # through the workers' pickles too


def test_tokenizer_pickles():
    tok = Tokenizer(n_cpus=3)
    tok2 = pickle.loads(pickle.dumps(tok))
    assert repr(tok2) == repr(tok) and tok2.n_cpus == 3 and tok2.special_cases == text_spec_tok
    assert tok2.process_all(['Hello WORLD']) == [['xxmaj', 'hello', 'xxup', 'world']]


def test_vocab_saves_as_plain_data(reviews, tmp_path):
    toks = Tokenizer(n_cpus=1).process_all(reviews.text.tolist()[:200])
    v = Vocab.create(toks)
    torch.save(v.state(), tmp_path/'itos.pth')
    v2 = Vocab.from_state(torch.load(tmp_path/'itos.pth', weights_only=True))
    assert v2.itos == v.itos and v2.numericalize(toks[0]) == v.numericalize(toks[0])
    assert v.itos[:9] == text_spec_tok and v.itos[9:12] == ['the', '.', ',']
