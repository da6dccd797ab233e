"""Text benchmarks: ULMFiT on imdb_sample and lesson 7's GRU on human_numbers, coursekit and fastai v2 side by side.

  imdb    imdb_sample (1,000 real reviews, the is_valid column as the split: 800/200), AWD-LSTM at full size (emb 400,
          n_hid 1152, 3 layers), not pretrained: a language model trained on the sample itself, then the classifier on
          its encoder with gradual unfreezing, as the issue and the lesson give them:
            TextList.from_csv(path, 'texts.csv', cols='text').split_from_df(col=2).label_for_lm().databunch(bs=32)
            language_model_learner(data_lm, AWD_LSTM, drop_mult=0.3, pretrained=False)
            fit_one_cycle(lm_epochs (4), 1e-2, moms=(0.8,0.7)); save_encoder
            TextList.from_csv(..., vocab=data_lm.vocab).split_from_df(col=2).label_from_df(cols=0).databunch(bs=32)
            text_classifier_learner(data_clas, AWD_LSTM, drop_mult=0.5, pretrained=False); load_encoder
            fit_one_cycle(1, 2e-2); freeze_to(-2) fit_one_cycle(1, slice(1e-2/2.6**4, 1e-2));
            unfreeze() fit_one_cycle(2, slice(1e-3/2.6**4, 1e-3)), moms=(0.8,0.7) throughout.
          The figure: the validation accuracy after the last epoch, and the seconds of the whole run (data + fits).
  humnum  human_numbers, the lesson's 2-layer nn.GRU with BatchNorm (nh 64, bs 64, bptt 20), Learner(data, Model5(),
          metrics=accuracy), fit_one_cycle(epochs (10), 1e-2): validation accuracy and seconds per epoch.

Everything is float32, as in fastai. With `--fastai-python PATH` (the python of a venv with fastai v2), the
same recipe runs in that venv (benchmarks/fastai_v2_imdb.py) after coursekit's, on the same unpacked folders, and the
ratios are printed. Both set torch.set_num_threads(--threads) and show no progress bar. The issue's fastai v2 figures
on this 2-core machine: imdb accuracy 0.620 in 1,857 s (the LM 1,169 s of it); humnum (20 epochs) 0.846 in 18.6 s.

Run: .venv/bin/python benchmarks/bench_imdb.py [--what imdb humnum] [--threads 2] [--fastai-python PATH]
         [--lm-epochs 4] [--epochs 10] [--n N (first N reviews: a smoke test)] [--seed 42]
"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path

import torch

from coursekit.text import (untar_data, URLs, TextList, ItemLists, AWD_LSTM, language_model_learner, text_classifier_learner,
                            Learner, accuracy, set_seed, nn, defaults)
from timing import EpochTimer      # benchmarks/timing.py


def _fit(learn, *args, **kw) -> tuple:
    "Seconds of `fit_one_cycle(*args)` and of each of its epochs."
    timer = EpochTimer('cpu')
    t = time.perf_counter()
    learn.fit_one_cycle(*args, callbacks=[timer], **kw)
    return time.perf_counter() - t, timer.times


def coursekit_imdb(a) -> dict:
    path = untar_data(URLs.IMDB_SAMPLE)
    res = {'library': 'coursekit', 'threads': torch.get_num_threads()}
    t = time.perf_counter()
    src = TextList.from_csv(path, 'texts.csv', cols='text')
    if a.n: src = src[:a.n]
    data_lm = src.split_from_df(col=2).label_for_lm().databunch(bs=32)
    res['lm_data_seconds'] = time.perf_counter() - t
    learn = language_model_learner(data_lm, AWD_LSTM, drop_mult=0.3, pretrained=False, silent=True)
    res['lm_fit_seconds'], res['lm_epoch_seconds'] = _fit(learn, a.lm_epochs, 1e-2, moms=(0.8, 0.7))
    res['lm_accuracy'] = learn.recorder.metrics[-1][0]
    learn.save_encoder('bench_enc')
    t = time.perf_counter()
    src = TextList.from_csv(path, 'texts.csv', cols='text', vocab=data_lm.vocab)
    if a.n: src = src[:a.n]
    data = src.split_from_df(col=2).label_from_df(cols=0).databunch(bs=32)
    res['clas_data_seconds'] = time.perf_counter() - t
    learn = text_classifier_learner(data, AWD_LSTM, drop_mult=0.5, pretrained=False, silent=True)
    learn.load_encoder('bench_enc')
    secs, epochs = [], []
    for unfreeze, n, lr in ((None, 1, 2e-2), (-2, 1, slice(1e-2/(2.6**4), 1e-2)), (0, 2, slice(1e-3/(2.6**4), 1e-3))):
        if unfreeze is not None: learn.freeze_to(unfreeze)
        s, e = _fit(learn, n, lr, moms=(0.8, 0.7)); secs.append(s); epochs += e
    res['clas_fit_seconds'], res['clas_epoch_seconds'] = secs, epochs
    res['accuracy'] = learn.recorder.metrics[-1][0]
    res['vocab'] = len(data_lm.vocab.itos)
    res['total_seconds'] = res['lm_data_seconds'] + res['lm_fit_seconds'] + res['clas_data_seconds'] + sum(secs)
    return res


def coursekit_humnum(a) -> dict:
    path = untar_data(URLs.HUMAN_NUMBERS)
    readnums = lambda d: [', '.join(o.strip() for o in open(path/d).readlines())]
    res = {'library': 'coursekit', 'threads': torch.get_num_threads()}
    t = time.perf_counter()
    src = ItemLists(path, TextList(readnums('train.txt'), path=path), TextList(readnums('valid.txt'), path=path)).label_for_lm()
    data = src.databunch(bs=64, bptt=20)
    res['data_seconds'] = time.perf_counter() - t
    nv, nh, bs = len(data.vocab.itos), 64, 64
    class Model5(nn.Module):
        def __init__(self):
            super().__init__()
            self.i_h, self.rnn, self.h_o, self.bn = nn.Embedding(nv, nh), nn.GRU(nh, nh, 2), nn.Linear(nh, nv), nn.BatchNorm1d(nh)
            self.h = torch.zeros(2, bs, nh).to(defaults.device)
        def forward(self, x):
            res, h = self.rnn(self.i_h(x), self.h)
            self.h = h.detach()
            return self.h_o(self.bn(res.view(-1, nh)).view(res.shape))
    learn = Learner(data, Model5(), metrics=accuracy, silent=True)
    res['fit_seconds'], res['epoch_seconds'] = _fit(learn, a.epochs, 1e-2)
    res['accuracy'], res['epochs'] = learn.recorder.metrics[-1][0], a.epochs
    return res


def _show(what, rows):
    keys = ['accuracy', 'total_seconds', 'lm_fit_seconds', 'lm_accuracy', 'clas_fit_seconds', 'vocab'] if what == 'imdb' else \
           ['accuracy', 'fit_seconds', 'epoch_seconds', 'epochs']
    print(f'\n== {what} ==')
    for r in rows:
        print(f"{r['library']:<16}" + '  '.join(f'{k} {json.dumps(r.get(k) if not isinstance(r.get(k), float) else round(r[k], 4))}' for k in keys))
    if len(rows) == 2:
        k = 'total_seconds' if what == 'imdb' else 'fit_seconds'
        print(f"time ratio coursekit/fastai: {rows[0][k]/rows[1][k]:.2f}; accuracy {rows[0]['accuracy']:.3f} vs {rows[1]['accuracy']:.3f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--what', nargs='+', default=['humnum', 'imdb'], choices=['imdb', 'humnum'])
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--fastai-python', default=None)
    p.add_argument('--lm-epochs', type=int, default=4)
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--n', type=int, default=None)
    p.add_argument('--seed', type=int, default=42)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f'torch {torch.__version__}, {a.threads} threads, load average {os.getloadavg()[0]:.2f}')
    for what in a.what:
        if a.seed is not None: set_seed(a.seed)
        rows = [(coursekit_imdb if what == 'imdb' else coursekit_humnum)(a)]
        print(json.dumps(rows[0]))
        if a.fastai_python:
            data = untar_data(URLs.IMDB_SAMPLE if what == 'imdb' else URLs.HUMAN_NUMBERS)
            cmd = [a.fastai_python, str(Path(__file__).parent/'fastai_v2_imdb.py'), '--what', what, '--data', str(data),
                   '--threads', str(a.threads), '--lm-epochs', str(a.lm_epochs), '--epochs', str(a.epochs)] + \
                  (['--n', str(a.n)] if a.n else []) + (['--seed', str(a.seed)] if a.seed is not None else [])
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode: print(out.stderr[-3000:]); continue
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[1]))
        _show(what, rows)


if __name__ == '__main__': main()
