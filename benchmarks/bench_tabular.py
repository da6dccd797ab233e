"""Tabular and collaborative filtering benchmarks: coursekit and fastai v2 side by side, measured in the same run.

  adult      adult_sample, the course's lesson 4 recipe: procs [FillMissing, Categorify, Normalize],
             tabular_learner(layers=[200,100], metrics=accuracy), fit_one_cycle(1, 1e-2), bs 64. Twice:
               lesson  validation = rows 800..999, as in the lesson (only 200 rows: the accuracy is noisy)
               rand20  a random 20% for validation: `np.random.default_rng(42).permutation(n)[:int(0.2*n)]`,
                       which is coursekit's `split_by_rand_pct(0.2, seed=42)`; fastai gets it as `valid_idx`
             Target: accuracy >= 0.82.
  movielens  movie_lens_sample, `CollabDataBunch.from_df(ratings, seed=42)` (a random 20%, bs 64),
             collab_learner(n_factors=50, y_range=(0,5.5)), fit_one_cycle(3, 5e-3); the metric is the
             validation MSE. fastai gets the same split (an IndexSplitter in what CollabDataLoaders.from_df
             builds), and also runs its own line, `CollabDataLoaders.from_df(ratings, valid_pct=0.2, seed=42)`,
             whose RandomSplitter picks another 20%. Target: MSE <= 0.70.

Each dataset runs in a fresh process per library, coursekit's (this script, `--child`) first, then, with
`--fastai-python PATH` (the python of a venv with fastai v2), fastai's: benchmarks/fastai_v2_tabular.py runs
the same recipes in the same order (so that the first, cold fit of each process is the same one) and prints
one JSON line that this script reads. Alternating keeps both libraries under the same load when the machine
is shared. The load average is printed: with more busy threads than cores, torch's OpenMP threads spin
while waiting and 2-thread epochs become 10 to 250 times slower (measured on the 2-core machine with
other jobs running), so that the figures say nothing; `OMP_WAIT_POLICY=PASSIVE` in the environment (the
subprocesses inherit it) or `--threads 1` removes that. Both libraries set torch.set_num_threads(--threads),
neither shows a progress bar or a results table, and neither uses loader workers.

Per library and dataset: the metric after the timed fit (from get_preds on the validation set), the seconds
building the data, the seconds of the fit call (as the user waits for it: the first fit of a process pays
torch's and the library's one-time costs), seconds per epoch (an epoch-timer callback), the warm seconds per
epoch (the best of --warm more `fit_one_cycle(1, lr)` calls on the same learner), the CPU seconds of the timed
fit (process time; spinning OpenMP threads count too), and the time ratios coursekit/fastai. Target: coursekit's epoch at most half of fastai's (ratio <= 0.5).

Run: .venv/bin/python benchmarks/bench_tabular.py [--what adult movielens] [--device cpu] [--threads 2]
         [--fastai-python PATH] [--warm 2] [--seed N]
     (on a busy machine: OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_tabular.py ...)
"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from coursekit.tabular import (untar_data, URLs, TabularList, FillMissing, Categorify, Normalize, tabular_learner, accuracy,
                               set_seed, defaults)
from coursekit.collab import CollabDataBunch, collab_learner
from timing import sync as _sync, EpochTimer as _EpochTimer      # benchmarks/timing.py

CAT_NAMES = ['workclass', 'education', 'marital-status', 'occupation', 'relationship', 'race']
CONT_NAMES = ['age', 'fnlwgt', 'education-num']


def _run(learn, epochs:int, lr:float, metric:str, args) -> dict:
    "Time `fit_one_cycle(epochs, lr)`, read the metric, then time `args.warm` more one-epoch fits."
    timer = _EpochTimer(args.device)
    _sync(args.device); t, c = time.perf_counter(), time.process_time()
    learn.fit_one_cycle(epochs, lr, callbacks=[timer])
    _sync(args.device); fit, cpu = time.perf_counter() - t, time.process_time() - c
    preds, targs = learn.get_preds()
    if metric == 'accuracy': value = float((preds.argmax(1) == targs.view(-1)).float().mean())
    else: value = float(((preds.view(-1) - targs.view(-1).float())**2).mean())
    warm = []
    for _ in range(args.warm):
        _sync(args.device); t = time.perf_counter()
        learn.fit_one_cycle(1, lr)
        _sync(args.device); warm.append(time.perf_counter() - t)
    return {metric: value, 'fit_seconds': fit, 'cpu_seconds': cpu, 'epoch_seconds': timer.times, 'warm_epoch_seconds': warm}


def coursekit_adult(args, path) -> dict:
    "The lesson's lines, on the lesson's split and on a random 20%."
    df = pd.read_csv(path/'adult.csv')
    res = {}
    for what in ['adult_lesson', 'adult_rand']:
        t = time.perf_counter()
        src = TabularList.from_df(df, path=path, cat_names=CAT_NAMES, cont_names=CONT_NAMES, procs=[FillMissing, Categorify, Normalize])
        if what == 'adult_lesson':
            test = TabularList.from_df(df.iloc[800:1000].copy(), path=path, cat_names=CAT_NAMES, cont_names=CONT_NAMES)
            data = src.split_by_idx(list(range(800, 1000))).label_from_df(cols='salary').add_test(test).databunch(bs=args.bs)
        else:
            data = src.split_by_rand_pct(0.2, seed=args.split_seed).label_from_df(cols='salary').databunch(bs=args.bs)
        data_seconds = time.perf_counter() - t
        if args.seed is not None: set_seed(args.seed)
        learn = tabular_learner(data, layers=[200, 100], metrics=accuracy, silent=True)
        res[what] = {**_run(learn, 1, 1e-2, 'accuracy', args), 'data_seconds': data_seconds,
                     'n_train': len(data.train_ds), 'n_valid': len(data.valid_ds), 'batches': len(data.train_dl)}
    return res


def coursekit_movielens(args, path) -> dict:
    "The lesson's lines: CollabDataBunch.from_df(ratings, seed=42), collab_learner(n_factors=50, y_range=[0,5.5])."
    ratings = pd.read_csv(path/'ratings.csv')
    t = time.perf_counter()
    data = CollabDataBunch.from_df(ratings, seed=args.split_seed, bs=args.bs)
    data_seconds = time.perf_counter() - t
    if args.seed is not None: set_seed(args.seed)
    learn = collab_learner(data, n_factors=50, y_range=[0, 5.5], silent=True)
    return {'ml': {**_run(learn, 3, 5e-3, 'mse', args), 'data_seconds': data_seconds,
                   'n_train': len(data.train_ds), 'n_valid': len(data.valid_ds), 'batches': len(data.train_dl)}}


def fastai_results(args, paths:dict) -> dict:
    "Run benchmarks/fastai_v2_tabular.py with `args.fastai_python`: its JSON, or None."
    if not args.fastai_python: return None
    cmd = [args.fastai_python, str(Path(__file__).parent/'fastai_v2_tabular.py'), '--threads', str(args.threads),
           '--device', args.device, '--bs', str(args.bs), '--split-seed', str(args.split_seed), '--warm', str(args.warm)]
    if args.seed is not None: cmd += ['--seed', str(args.seed)]
    whats = []
    if 'adult' in paths: cmd += ['--adult', str(paths['adult'])]; whats += ['adult_lesson', 'adult_rand']
    if 'movielens' in paths: cmd += ['--ml', str(paths['movielens'])]; whats += ['ml', 'ml_own']
    r = subprocess.run(cmd + ['--what', *whats], capture_output=True, text=True)
    if r.returncode:
        print('fastai v2 run failed:', r.stderr[-2000:]); return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def _row(name:str, r:dict, metric:str) -> str:
    ep, warm = np.mean(r['epoch_seconds']), (min(r['warm_epoch_seconds']) if r['warm_epoch_seconds'] else float('nan'))
    return (f"  {name:26s} {r[metric]:8.4f} {r['data_seconds']:7.2f} {r['fit_seconds']:7.2f} {r['cpu_seconds']:7.2f} "
            f"{ep:8.2f}   {' '.join(f'{s:.2f}' for s in r['epoch_seconds']):16s} {warm:8.2f}")


def report(title:str, metric:str, target:str, ck:dict, fa:dict, fa_name:str, extra=None):
    "One dataset's table: coursekit, fastai (same split), any extra fastai row, and the ratios."
    print(f'\n{title}')
    print(f"  {'library':26s} {metric:>8s} {'data s':>7s} {'fit s':>7s} {'cpu s':>7s} {'s/epoch':>8s}   {'epochs s':16s} {'warm s/ep':>8s}")
    print(_row('coursekit', ck, metric))
    if fa: print(_row(fa_name, fa, metric))
    if extra: print(_row(extra[0], extra[1], metric))
    if fa:
        ratio = lambda f: f(ck)/f(fa)
        warm = (ratio(lambda r: min(r['warm_epoch_seconds'])) if ck['warm_epoch_seconds'] and fa['warm_epoch_seconds'] else float('nan'))
        print(f"  time ratio coursekit/fastai: fit {ratio(lambda r: r['fit_seconds']):.2f}, "
              f"s/epoch {ratio(lambda r: np.mean(r['epoch_seconds'])):.2f}, warm s/epoch {warm:.2f}   (target <= 0.5)")
    print(f'  target: {target}')


def coursekit_results(args, what:str) -> dict:
    "coursekit's part for `what` (adult or movielens) in a fresh process, like fastai's: its results."
    cmd = [sys.executable, __file__, '--child', what, '--threads', str(args.threads), '--device', args.device, '--bs', str(args.bs),
           '--split-seed', str(args.split_seed), '--warm', str(args.warm)] + (['--seed', str(args.seed)] if args.seed is not None else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode: raise RuntimeError(f'coursekit run failed: {r.stderr[-3000:]}')
    return json.loads(r.stdout.strip().splitlines()[-1])


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--what', nargs='+', default=['adult', 'movielens'], choices=['adult', 'movielens'])
    p.add_argument('--device', default='cpu', help="cpu (the default, as fastai's figures were taken) or cuda")
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--warm', type=int, default=2, help='extra one-epoch fits, for the warm epoch time')
    p.add_argument('--split-seed', type=int, default=42, help='seed of the random 20%% validation splits')
    p.add_argument('--seed', type=int, default=None, help='set_seed before each learner (default: none, as in the course)')
    p.add_argument('--fastai-python', help='the python of a venv with fastai v2 installed, for the comparison')
    p.add_argument('--child', choices=['adult', 'movielens'], help=argparse.SUPPRESS)   # one part of coursekit's run, JSON out
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    defaults.device = torch.device(args.device)
    if args.child:
        path = untar_data(URLs.ADULT_SAMPLE if args.child == 'adult' else URLs.ML_SAMPLE)
        print(json.dumps((coursekit_adult if args.child == 'adult' else coursekit_movielens)(args, path)))
        sys.exit()
    print(f'torch {torch.__version__}, device {args.device}'
          f"{' (' + torch.cuda.get_device_name() + ')' if torch.device(args.device).type == 'cuda' else ''}, {args.threads} threads, "
          f"bs {args.bs}, {os.cpu_count()} cpus, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}; "
          'each library runs each dataset in a fresh process, coursekit first')
    if args.fastai_python and not Path(args.fastai_python).exists():
        print(f'fastai v2: {args.fastai_python} does not exist: coursekit figures only.'); args.fastai_python = None
    elif not args.fastai_python: print('no --fastai-python: coursekit figures only.')
    for what in args.what:
        path = untar_data(URLs.ADULT_SAMPLE if what == 'adult' else URLs.ML_SAMPLE)
        load0 = os.getloadavg()[0]
        ck = coursekit_results(args, what)
        load1 = os.getloadavg()[0]
        fa = fastai_results(args, {what: path})
        fres, fname = (fa['results'], f"fastai {fa['version']}") if fa else ({}, None)
        print(f"\nload average (1 min): {load0:.2f} before coursekit, {load1:.2f} before fastai, {os.getloadavg()[0]:.2f} after"
              + (f"   [fastai {fa['version']}, torch {fa['torch']}]" if fa else ''))
        if what == 'adult':
            r = ck['adult_lesson']
            report(f"adult_sample, lesson 4 split (validation = rows 800..999: {r['n_train']} train / {r['n_valid']} valid, "
                   f"{r['batches']} batches), layers [200,100], fit_one_cycle(1, 1e-2)", 'accuracy', 'accuracy >= 0.82',
                   r, fres.get('adult_lesson'), fname)
            r = ck['adult_rand']
            report(f"adult_sample, random 20% split (seed {args.split_seed}: {r['n_train']} train / {r['n_valid']} valid, "
                   f"{r['batches']} batches), layers [200,100], fit_one_cycle(1, 1e-2) (the second fit of the process)",
                   'accuracy', 'accuracy >= 0.82', r, fres.get('adult_rand'), fname)
        else:
            r = ck['ml']
            report(f"movie_lens_sample, random 20% (seed {args.split_seed}, coursekit's split, both libraries: {r['n_train']} train / "
                   f"{r['n_valid']} valid, {r['batches']} batches), n_factors 50, y_range (0, 5.5), fit_one_cycle(3, 5e-3)",
                   'mse', 'validation MSE <= 0.70', r, fres.get('ml'), fname,
                   extra=(f'{fname} own split', fres['ml_own']) if 'ml_own' in fres else None)
