"""fastai v2 baseline for benchmarks/bench_imdb.py, for comparison only (run with a separate venv that has fastai).

    <fastai venv>/bin/python benchmarks/fastai_v2_imdb.py --what imdb --data data/imdb_sample --threads 2
    <fastai venv>/bin/python benchmarks/fastai_v2_imdb.py --what humnum --data data/human_numbers --threads 2

`--data` is the extracted dataset folder (fastai's `untar_data` is not used: it would try the internet).

  imdb    imdb_sample's texts.csv, the is_valid column as the split (800/200). TextDataLoaders.from_df(is_lm=True,
          bs 32, seq_len 70), language_model_learner(AWD_LSTM, drop_mult=0.3, pretrained=False, metrics=accuracy),
          fit_one_cycle(lm_epochs, 1e-2, moms=(0.8,0.7,0.8)), save_encoder; then TextDataLoaders.from_df(text_vocab=
          the LM's vocab, bs 32), text_classifier_learner(drop_mult=0.5, pretrained=False, metrics=accuracy),
          load_encoder, fit_one_cycle(1, 2e-2), freeze_to(-2) fit_one_cycle(1, slice(1e-2/2.6**4, 1e-2)),
          unfreeze() fit_one_cycle(2, slice(1e-3/2.6**4, 1e-3)), moms (0.8,0.7,0.8) throughout.
  humnum  human_numbers as the lesson joins it (one text per file), LM DataLoaders bs 64 seq_len 20, the lesson's
          2-layer GRU with BatchNorm (nh 64), Learner(..., loss_func=CrossEntropyLossFlat(), metrics=accuracy),
          fit_one_cycle(epochs, 1e-2).

Prints one JSON line: accuracy (the last epoch's validation accuracy), seconds of building the data, of each fit,
and of each epoch.
"""
import argparse, json, time, warnings


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--what', required=True, choices=['imdb', 'humnum'])
    p.add_argument('--data', required=True)
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--lm-epochs', type=int, default=4)
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--n', type=int, default=None, help='use only the first N reviews (a smoke test)')
    p.add_argument('--seed', type=int, default=None)
    a = p.parse_args()
    warnings.filterwarnings('ignore')
    import torch
    from fastai.text.all import (TextDataLoaders, language_model_learner, text_classifier_learner, AWD_LSTM, accuracy,
                                 Learner, CrossEntropyLossFlat, Callback, set_seed, LMDataLoader, DataLoaders, Numericalize,
                                 Tokenizer, SpacyTokenizer, tokenize1, L)
    import pandas as pd
    from pathlib import Path
    if a.threads: torch.set_num_threads(a.threads)
    if a.seed is not None: set_seed(a.seed)

    class Timer(Callback):
        def before_epoch(self): self.t = time.perf_counter()
        def after_epoch(self): self.times.append(time.perf_counter() - self.t)
    def fit(learn, *args, **kw):
        learn.remove_cbs([c for c in learn.cbs if type(c).__name__ in ('ProgressCallback',)])
        timer = Timer(); timer.times = []
        t = time.perf_counter()
        learn.fit_one_cycle(*args, cbs=[timer], **kw)
        return time.perf_counter() - t, timer.times

    path = Path(a.data)
    res = {'library': 'fastai ' + __import__('fastai').__version__, 'threads': torch.get_num_threads()}
    if a.what == 'imdb':
        df = pd.read_csv(path/'texts.csv')
        if a.n: df = df.iloc[:a.n]
        t = time.perf_counter()
        dls_lm = TextDataLoaders.from_df(df, path=path, text_col='text', is_lm=True, valid_col='is_valid', bs=32, seq_len=70, num_workers=0)
        res['lm_data_seconds'] = time.perf_counter() - t
        learn = language_model_learner(dls_lm, AWD_LSTM, drop_mult=0.3, pretrained=False, metrics=accuracy)
        with learn.no_bar(), learn.no_logging(): res['lm_fit_seconds'], res['lm_epoch_seconds'] = fit(learn, a.lm_epochs, 1e-2, moms=(0.8, 0.7, 0.8))
        res['lm_accuracy'] = float(learn.recorder.values[-1][2])
        learn.save_encoder('bench_enc')
        t = time.perf_counter()
        dls = TextDataLoaders.from_df(df, path=path, text_col='text', label_col='label', valid_col='is_valid', text_vocab=dls_lm.vocab,
                                      bs=32, num_workers=0)
        res['clas_data_seconds'] = time.perf_counter() - t
        learn = text_classifier_learner(dls, AWD_LSTM, drop_mult=0.5, pretrained=False, metrics=accuracy)
        learn.load_encoder('bench_enc')
        secs, epochs = [], []
        with learn.no_bar(), learn.no_logging():
            for unfreeze, n, lr in ((None, 1, 2e-2), (-2, 1, slice(1e-2/(2.6**4), 1e-2)), (0, 2, slice(1e-3/(2.6**4), 1e-3))):
                if unfreeze is not None: learn.freeze_to(unfreeze)
                s, e = fit(learn, n, lr, moms=(0.8, 0.7, 0.8)); secs.append(s); epochs += e
        res['clas_fit_seconds'], res['clas_epoch_seconds'] = secs, epochs
        res['accuracy'] = float(learn.recorder.values[-1][2])
        res['vocab'] = len(dls_lm.vocab)
        res['total_seconds'] = res['lm_data_seconds'] + res['lm_fit_seconds'] + res['clas_data_seconds'] + sum(secs)
    else:
        import torch.nn as nn, torch.nn.functional as F
        readnums = lambda d: [', '.join(o.strip() for o in open(path/d).readlines())]
        t = time.perf_counter()
        df = pd.DataFrame({'text': readnums('train.txt') + readnums('valid.txt'), 'is_valid': [False, True]})
        dls = TextDataLoaders.from_df(df, path=path, text_col='text', is_lm=True, valid_col='is_valid', bs=64, seq_len=20,
                                      num_workers=0, min_freq=1)
        res['data_seconds'] = time.perf_counter() - t
        nv, nh, bs = len(dls.vocab), 64, 64
        class Model5(nn.Module):
            def __init__(self):
                super().__init__()
                self.i_h, self.rnn, self.h_o, self.bn = nn.Embedding(nv, nh), nn.GRU(nh, nh, 2, batch_first=True), nn.Linear(nh, nv), nn.BatchNorm1d(nh)
                self.h = torch.zeros(2, bs, nh)
            def forward(self, x):
                res, h = self.rnn(self.i_h(x), self.h)
                self.h = h.detach()
                return self.h_o(self.bn(res.reshape(-1, nh)).view(res.shape))
            def reset(self): self.h.zero_()
        learn = Learner(dls, Model5(), loss_func=CrossEntropyLossFlat(), metrics=accuracy)
        with learn.no_bar(), learn.no_logging(): res['fit_seconds'], res['epoch_seconds'] = fit(learn, a.epochs, 1e-2)
        res['accuracy'] = float(learn.recorder.values[-1][2])
        res['epochs'] = a.epochs
    print(json.dumps(res))


if __name__ == '__main__': main()
