"""fastai v2 baseline for the tabular benchmarks, for comparison only (run with a separate venv that has fastai).

    <fastai venv>/bin/python benchmarks/fastai_v2_tabular.py --adult data/adult_sample --ml data/movie_lens_sample --threads 2

`--adult` is the extracted adult_sample folder (adult.csv), `--ml` the extracted movie_lens_sample folder
(ratings.csv); fastai's own `untar_data` is not used (it would try the internet). Everything runs on the
CPU (or `--device`), bs 64, no workers, no progress bar and no results table; only the fit calls are timed.
Runs, in this order (the same order as coursekit's part of benchmarks/bench_tabular.py, so that the
first, cold fit of each process is the same one):

  adult_lesson  procs [Categorify, FillMissing, Normalize], validation = rows 800..999 (the course's
                lesson 4 split), tabular_learner(layers=[200,100], metrics=accuracy), fit_one_cycle(1, 1e-2)
  adult_rand    the same with a random 20% for validation: `np.random.default_rng(seed).permutation(n)[:int(0.2*n)]`
                (exactly coursekit's `split_by_rand_pct(0.2, seed)`), passed as `valid_idx`
  ml            movie_lens_sample, collab_learner(n_factors=50, y_range=(0,5.5)), fit_one_cycle(3, 5e-3), validation
                = the same numpy split as adult_rand (coursekit's `CollabDataBunch.from_df(ratings, seed=42)`),
                built like `CollabDataLoaders.from_df` but with an `IndexSplitter`
  ml_own        fastai's own line: `CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=42, bs=64)` (its
                RandomSplitter: a different 20% than the line above)

For each: the metric (accuracy, or validation MSE), the seconds (and process CPU seconds) of the timed fit
call, the seconds of each epoch (a callback's clock, before_epoch to after_epoch), and `--warm` more
one-epoch fits on the same learner (their times only: the warm epoch time). Prints one JSON line.
"""
import argparse, contextlib, json, time, warnings


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--adult', help='extracted adult_sample folder (adult.csv)')
    p.add_argument('--ml', help='extracted movie_lens_sample folder (ratings.csv)')
    p.add_argument('--what', nargs='+', default=['adult_lesson', 'adult_rand', 'ml', 'ml_own'],
                   choices=['adult_lesson', 'adult_rand', 'ml', 'ml_own'])
    p.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
    p.add_argument('--device', default='cpu')
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--split-seed', type=int, default=42, help='seed of the random 20%% validation splits')
    p.add_argument('--seed', type=int, default=None, help='set_seed before each learner (default: none, as in the course)')
    p.add_argument('--warm', type=int, default=2, help='extra one-epoch fits timed after the measured fit')
    args = p.parse_args()

    # fastai/torch import emits e.g. "torch.jit.script is deprecated" FutureWarnings: keep stderr quiet
    warnings.simplefilter('ignore')
    import numpy as np
    import pandas as pd
    import torch
    torch.set_num_threads(args.threads)
    import fastai
    from fastai.tabular.all import (TabularDataLoaders, tabular_learner, Categorify, FillMissing, Normalize, accuracy,
                                    Callback, Path, set_seed, range_of, IndexSplitter, TransformBlock)
    from fastai.collab import CollabDataLoaders, collab_learner, TabularCollab
    device = torch.device(args.device)

    class EpochTimer(Callback):
        "Seconds of each epoch, training and validation."
        order = -100
        def before_fit(self): self.times = []
        def before_epoch(self): self.t = time.perf_counter()
        def after_epoch(self):
            if device.type == 'cuda': torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.t)

    def rand_valid(n):
        return np.random.default_rng(args.split_seed).permutation(n)[:int(0.2*n)]

    def run(learn, epochs, lr, metric):
        "Time fit_one_cycle(epochs, lr), then `--warm` one-epoch fits; the metric after the timed fit."
        timer = EpochTimer()
        with contextlib.ExitStack() as stack:  # no progress bar, no results table
            if hasattr(learn, 'no_bar'): stack.enter_context(learn.no_bar())
            if hasattr(learn, 'no_logging'): stack.enter_context(learn.no_logging())
            if device.type == 'cuda': torch.cuda.synchronize()
            t, c = time.perf_counter(), time.process_time()
            learn.fit_one_cycle(epochs, lr, cbs=timer)
            if device.type == 'cuda': torch.cuda.synchronize()
            fit_seconds, cpu_seconds = time.perf_counter() - t, time.process_time() - c
            epoch_seconds = list(timer.times)
            preds, targs = learn.get_preds()
            if metric == 'accuracy': value = float((preds.argmax(1) == targs.view(-1)).float().mean())
            else: value = float(((preds.view(-1) - targs.view(-1).float())**2).mean())
            warm = []
            for _ in range(args.warm):
                t = time.perf_counter()
                learn.fit_one_cycle(1, lr)
                if device.type == 'cuda': torch.cuda.synchronize()
                warm.append(time.perf_counter() - t)
        return {metric: round(value, 4), 'fit_seconds': round(fit_seconds, 3), 'cpu_seconds': round(cpu_seconds, 3),
                'epoch_seconds': [round(s, 3) for s in epoch_seconds],
                'warm_epoch_seconds': [round(s, 3) for s in warm]}

    res = {}
    if args.adult:
        df = pd.read_csv(Path(args.adult)/'adult.csv')
        cat_names = ['workclass', 'education', 'marital-status', 'occupation', 'relationship', 'race']
        cont_names = ['age', 'fnlwgt', 'education-num']
        for what, valid_idx in [('adult_lesson', list(range(800, 1000))), ('adult_rand', rand_valid(len(df)).tolist())]:
            if what not in args.what: continue
            t = time.perf_counter()
            dls = TabularDataLoaders.from_df(df, Path(args.adult), procs=[Categorify, FillMissing, Normalize], cat_names=cat_names,
                                             cont_names=cont_names, y_names='salary', valid_idx=valid_idx, bs=args.bs, device=device)
            data_seconds = time.perf_counter() - t
            if args.seed is not None: set_seed(args.seed)
            learn = tabular_learner(dls, layers=[200, 100], metrics=accuracy)
            res[what] = {**run(learn, 1, 1e-2, 'accuracy'), 'data_seconds': round(data_seconds, 3),
                         'n_train': len(dls.train_ds), 'n_valid': len(dls.valid_ds), 'batches': len(dls.train)}
    if args.ml:
        ratings = pd.read_csv(Path(args.ml)/'ratings.csv')
        for what in ['ml', 'ml_own']:
            if what not in args.what: continue
            t = time.perf_counter()
            if what == 'ml_own':
                dls = CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=args.split_seed, bs=args.bs, device=device)
            else:   # CollabDataLoaders.from_df, with coursekit's split
                u, i, r = ratings.columns[:3]
                splits = IndexSplitter(rand_valid(len(ratings)).tolist())(range_of(ratings))
                to = TabularCollab(ratings, [Categorify], [u, i], y_names=[r], y_block=TransformBlock(), splits=splits)
                dls = to.dataloaders(path='.', bs=args.bs, device=device)
            data_seconds = time.perf_counter() - t
            if args.seed is not None: set_seed(args.seed)
            learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5))
            res[what] = {**run(learn, 3, 5e-3, 'mse'), 'data_seconds': round(data_seconds, 3),
                         'n_train': len(dls.train_ds), 'n_valid': len(dls.valid_ds), 'batches': len(dls.train)}
    print(json.dumps({'library': 'fastai', 'version': fastai.__version__, 'torch': torch.__version__, 'threads': args.threads,
                      'device': str(device), 'bs': args.bs, 'results': res}))


if __name__ == '__main__':
    main()
