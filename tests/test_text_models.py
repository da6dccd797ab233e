"Text models beyond the notebook's oracles: tiny models that learn, the full-size AWD-LSTM, layer groups in the optimizer, copies, recipes, v1 state dicts, autocast."
import copy, pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from coursekit.core import from_qualname, set_seed
from coursekit.export import check_plain
from coursekit.optim import OptimWrapper
from coursekit.text.models import (AWD_LSTM, awd_lstm_clas_config, awd_lstm_clas_split, awd_lstm_lm_config, awd_lstm_lm_split,
                                   get_language_model, get_text_classifier)

TINY_LM = dict(awd_lstm_lm_config, emb_sz=16, n_hid=32)
TINY_CLAS = dict(awd_lstm_clas_config, emb_sz=16, n_hid=32)


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def lm_batches(stream, bs, bptt):
    "Sequence-first language-model batches `(x, y)` of `stream`, each column going on where the last batch's stopped."
    n = (len(stream) - 1)//bs
    cols = stream[:n*bs].view(bs, n).t()
    tgts = stream[1:n*bs + 1].view(bs, n).t()
    return [(cols[i:i + bptt], tgts[i:i + bptt]) for i in range(0, n - bptt + 1, bptt)]


def train_lm(model, stream, epochs, lr):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for epoch in range(epochs):
        model.train(); model.reset()
        for x, y in lm_batches(stream, 8, 10):
            loss = F.cross_entropy(model(x).view(-1, 20), y.reshape(-1))
            opt.zero_grad(); loss.backward(); opt.step()
            losses.append(loss.item())
    return losses

def test_tiny_language_model_learns():
    "A repeating pattern of 8 tokens: the 3-layer default lowers its loss; a 1-layer one (quicker to start) learns the pattern."
    stream = torch.tensor([2, 7, 3, 9, 4, 11, 5, 8] * 200)
    set_seed(0)
    losses = train_lm(get_language_model(AWD_LSTM, 20, TINY_LM, drop_mult=0.1), stream, 3, 1e-2)
    assert losses[0] > 2.9 and sum(losses[-5:])/5 < 2.2, (losses[0], losses[-5:])
    set_seed(0)
    model = get_language_model(AWD_LSTM, 20, dict(TINY_LM, n_layers=1), drop_mult=0.3)
    losses = train_lm(model, stream, 5, 3e-2)
    assert sum(losses[-5:])/5 < 0.2, losses[-5:]                    # below log(8): it reads the context
    model.eval(); model.reset()
    with torch.no_grad(): acc = (model(stream[:-1, None]).argmax(-1)[:, 0] == stream[1:]).float().mean()
    assert acc > 0.99


def test_tiny_classifier_learns():
    "Reviews of 3 to 40 tokens, padded first, read in chunks of 8: class 0 draws its words from 6-17, class 1 from 18-29."
    set_seed(0)
    def batch(bs=16):
        lens, y = torch.randint(3, 41, (bs,)), torch.randint(0, 2, (bs,))
        docs = [torch.randint(6, 18, (int(n),)) + 12*int(t) for n, t in zip(lens, y)]
        sl = int(lens.max())
        return torch.stack([torch.cat([torch.ones(sl - len(d), dtype=torch.long), d]) for d in docs], 1), y
    model = get_text_classifier(AWD_LSTM, 30, 2, bptt=8, max_len=48, config=TINY_CLAS, drop_mult=0.1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for step in range(40):
        x, y = batch()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:])/5 < 0.3, (losses[:5], losses[-5:])
    model.eval(); x, y = batch(64)
    with torch.no_grad(): assert (model(x).argmax(1) == y).float().mean() > 0.95


def test_early_chunks_build_the_state_without_a_graph():
    "Only the chunks in the last `max_len` steps get gradients; the ones before still set the state they start from."
    set_seed(0)
    model = get_text_classifier(AWD_LSTM, 50, 2, bptt=5, max_len=10, config=TINY_CLAS, drop_mult=0.)
    x = torch.cat([torch.randint(2, 20, (10, 2)), torch.randint(20, 50, (10, 2))])   # words 2-19 only in the early chunks
    model(x).sum().backward()
    g = model[0].module.encoder.weight.grad
    assert g[2:20].abs().sum() == 0 and g[x[10:].unique()].abs().sum(1).gt(0).all()
    model.eval()
    with torch.no_grad(): assert not torch.allclose(model(x), model(torch.cat([torch.full((10, 2), 3), x[10:]])))


def n_params(m): return sum(p.numel() for p in m.parameters())

def lstm_params(n_in, n_out): return 4*n_out*(n_in + n_out) + 8*n_out

def test_full_size_language_model():
    set_seed(0)
    model = get_language_model(AWD_LSTM, 8000)
    enc = model[0]
    assert isinstance(enc, AWD_LSTM) and (enc.emb_sz, enc.n_hid, enc.n_layers) == (400, 1152, 3)
    expected = 8000*400 + lstm_params(400, 1152) + lstm_params(1152, 1152) + lstm_params(1152, 400) + 8000   # tied decoder: its bias only
    assert n_params(model) == expected == 23_481_280
    assert n_params(AWD_LSTM(60000)) == 44_273_280                  # fastai's WT103 encoder: 24M in the embedding, 20.3M in the LSTMs
    x = torch.randint(0, 8000, (70, 4))
    out = model(x)
    assert out.shape == (70, 4, 8000)
    F.cross_entropy(out.view(-1, 8000), x.reshape(-1)).backward()
    for n, p in model.named_parameters(): assert p.grad is not None, n
    assert model[0].rnns[2].weight_hh_l0_raw.grad.abs().sum() > 0


def test_full_size_classifier_reads_long_reviews_in_chunks():
    set_seed(0)
    model = get_text_classifier(AWD_LSTM, 8000, 2, bptt=20, max_len=40)
    x = torch.randint(2, 8000, (60, 3)); x[:30, 1] = 1; x[:50, 2] = 1
    seen = []
    model[0].register_forward_hook(lambda m, i, o: seen.append(o))
    out = model(x)
    assert out.shape == (3, 2)
    raw, outs, mask = seen[0]
    assert [o.shape for o in raw] == [(40, 3, 1152), (40, 3, 1152), (40, 3, 400)]   # chunks 20:40 and 40:60
    assert mask.shape == (40, 3) and mask[:, 0].sum() == 0 and mask[:, 1].sum() == 10 and mask[:, 2].sum() == 30
    F.cross_entropy(out, torch.tensor([0, 1, 0])).backward()
    assert model[0].module.rnns[0].weight_hh_l0_raw.grad.abs().sum() > 0


def test_layer_groups_go_into_the_optimizer_once():
    for model, split, n in [(get_language_model(AWD_LSTM, 50, TINY_LM), awd_lstm_lm_split, 4),
                            (get_text_classifier(AWD_LSTM, 50, 3, config=TINY_CLAS), awd_lstm_clas_split, 5)]:
        groups = split(model)
        assert len(groups) == n
        opt = OptimWrapper(torch.optim.Adam, groups, lr=1e-3)     # PyTorch refuses a parameter in two groups
        in_opt = [p for g in opt.opt.param_groups for p in g['params']]
        assert len(in_opt) == len({id(p) for p in in_opt}) == len(list(model.parameters()))


def test_freeze_to_minus_two_trains_the_last_lstm_and_the_head():
    model = get_text_classifier(AWD_LSTM, 50, 3, config=TINY_CLAS)
    groups = awd_lstm_clas_split(model)
    for g in groups[:-2]: g.requires_grad_(False)
    training = {n for n, p in model.named_parameters() if p.requires_grad}
    assert training and all(n.startswith(('0.module.rnns.2.', '1.')) for n in training)
    assert any(n.startswith('0.module.rnns.2.') for n in training)


def test_recipes_are_plain_data_and_rebuild_the_model():
    for model in (get_language_model(AWD_LSTM, 50, TINY_LM, drop_mult=0.3),
                  get_text_classifier('AWD_LSTM', 50, 3, config=TINY_CLAS, drop_mult=0.5, lin_ftrs=[20], ps=[0.2])):
        r = model.recipe
        check_plain(r['kwargs'], 'recipe')
        again = from_qualname(r['fn'])(**r['kwargs'])
        again.load_state_dict(model.state_dict())
        assert repr(again) == repr(model)


def test_pickle_and_deepcopy_after_training_steps():
    set_seed(0)
    model = get_language_model(AWD_LSTM, 50, TINY_LM)
    x = torch.randint(0, 50, (12, 4))
    model(x).sum().backward()                                       # a graph was built: nothing of it stays on the model
    for m in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        model.eval(); m.eval(); model.reset(); m.reset()
        with torch.no_grad(): assert torch.equal(m(x), model(x))
        model.train()


def test_fastai_v1_state_dict_loads():
    "v1 files also hold each LSTM's dropped-out `module.weight_hh_l0`: it is ignored, and strict loading still checks the rest."
    model = get_language_model(AWD_LSTM, 50, TINY_LM)
    sd = model.state_dict()
    v1 = {**sd, **{f'0.rnns.{i}.module.weight_hh_l0': torch.zeros_like(sd[f'0.rnns.{i}.weight_hh_l0_raw']) for i in range(3)}}
    fresh = get_language_model(AWD_LSTM, 50, TINY_LM)
    fresh.load_state_dict(v1)
    assert torch.equal(fresh[0].rnns[1].weight_hh_l0_raw, sd['0.rnns.1.weight_hh_l0_raw'])
    with pytest.raises(RuntimeError, match='Unexpected key'): fresh.load_state_dict({**v1, '0.rnns.0.module.other': torch.zeros(1)})


def test_state_survives_autocast_and_a_dtype_change():
    set_seed(0)
    model = get_language_model(AWD_LSTM, 50, TINY_LM).eval()
    x = torch.randint(0, 50, (10, 4))
    with torch.no_grad():
        model.reset(); whole = model(x)
        model.reset()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            model(x[:5]); second = model(x[5:])
        assert model[0].hidden[0][0].dtype == torch.float32          # the state is kept in the weights' dtype
        assert (second.float() - whole[5:]).abs().max() < 0.05       # carried over (bf16 precision), not restarted
        model.double(); out = model(x)                               # another dtype: starts from zeros in float64
        assert out.dtype == torch.float64 and (out.float() - whole).abs().max() < 1e-5


def test_a_smaller_batch_starts_from_zeros_then_carries_on():
    set_seed(0)
    enc = AWD_LSTM(50, emb_sz=8, n_hid=12).eval()
    x = torch.randint(0, 50, (10, 4))
    with torch.no_grad():
        enc.reset(); whole = enc(x[:, :2])[0][-1]
        enc(x[:5]); a = enc(x[:5, :2])[0][-1]; b = enc(x[5:, :2])[0][-1]
    assert torch.allclose(torch.cat([a, b]), whole, atol=1e-6)
