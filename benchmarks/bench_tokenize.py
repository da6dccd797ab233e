"""Tokenizing speed: coursekit's `Tokenizer` against plain spaCy and fastai v2, on the IMDB sample's reviews.

The reviews of imdb_sample/texts.csv (1,000 of them, 1.4 MB) are repeated until the text is at least `--mb`
megabytes, then tokenized by:

  coursekit         `Tokenizer().process_all(texts)`: the course's rules and spaCy, on all the cores
  coursekit-1cpu    the same with `n_cpus=1` (in this process)
  spacy             plain `spacy.blank('en').tokenizer` over the texts, in this process, no rules: the reference
  fastai            fastai v2's `tokenize_texts(texts)` (its rules and SpacyTokenizer, `defaults.cpus` workers), and
  fastai-1cpu       the same with `n_workers=0` (in its process); both with `--fastai-python PATH`, the python
                    of a venv with fastai v2, in a separate process that reads the texts from a temporary file

Only the tokenizing is timed (not the imports, the reading of the texts, or building spaCy in this process).
Each line: cores used, MB of text, tokens made, seconds, tokens per second and the speed against plain spaCy.
The machine's load average is printed too: on a shared machine the figures move with it.

Run: python benchmarks/bench_tokenize.py [--mb 20] [--fastai-python /path/to/venv/bin/python]
"""
import argparse, json, os, pickle, subprocess, sys, tempfile, textwrap, time

import pandas as pd

from coursekit.core import defaults
from coursekit.datasets import untar_data, URLs
from coursekit.text.transform import Tokenizer

FASTAI_CHILD = textwrap.dedent('''
    import json, pickle, sys, time, warnings
    warnings.simplefilter('ignore')
    from fastai.text.core import tokenize_texts, defaults, SpacyTokenizer
    texts = pickle.load(open(sys.argv[1], 'rb'))
    SpacyTokenizer()                                 # imports spaCy before the clock starts
    res = {}
    for name, n in (('fastai', defaults.cpus), ('fastai-1cpu', 0)):
        t = time.perf_counter()
        toks = tokenize_texts(texts, n_workers=n)
        res[name] = dict(seconds=time.perf_counter() - t, tokens=sum(map(len, toks)), cores=max(n, 1))
    print(json.dumps(res))
''')


def texts_of(mb:float) -> list:
    "The sample's reviews, repeated until they make at least `mb` megabytes."
    texts = pd.read_csv(untar_data(URLs.IMDB_SAMPLE)/'texts.csv').text.tolist()
    size = sum(len(t.encode()) for t in texts)
    return texts * max(1, -(-int(mb * 1e6) // size))


def timed(f) -> tuple:
    "`(seconds, result)` of `f()`."
    t = time.perf_counter(); res = f()
    return time.perf_counter() - t, res


def plain_spacy(texts:list) -> list:
    import spacy
    tok = spacy.blank('en').tokenizer
    tok('warm up')
    return timed(lambda: [[w.text for w in doc] for doc in tok.pipe(texts)])


def fastai(python:str, texts:list) -> dict:
    with tempfile.NamedTemporaryFile(suffix='.pkl') as f:
        pickle.dump(texts, f); f.flush()
        r = subprocess.run([python, '-c', FASTAI_CHILD, f.name], capture_output=True, text=True)
    if r.returncode: raise RuntimeError(f'the fastai run failed:\n{r.stderr[-3000:]}')
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--mb', type=float, default=20, help='megabytes of text (the sample is 1.4 MB, repeated)')
    p.add_argument('--fastai-python', help='the python of a venv with fastai v2, to time its tokenizer too')
    args = p.parse_args()

    texts = texts_of(args.mb)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    print(f'{len(texts)} texts, {mb:.1f} MB; cores: {defaults.cpus}; load average {os.getloadavg()[0]:.1f}; '
          f'python {sys.version.split()[0]}', flush=True)
    rows = {}
    s, toks = plain_spacy(texts)
    rows['spacy'] = dict(seconds=s, tokens=sum(map(len, toks)), cores=1)
    del toks
    Tokenizer(n_cpus=1)._tokenizer()                 # builds spaCy here once (imports it) before the clock starts
    for name, n in (('coursekit', defaults.cpus), ('coursekit-1cpu', 1)):
        s, toks = timed(lambda: Tokenizer(n_cpus=n).process_all(texts))
        rows[name] = dict(seconds=s, tokens=sum(map(len, toks)), cores=n)
        del toks
    if args.fastai_python: rows.update(fastai(args.fastai_python, texts))

    ref = rows['spacy']['tokens'] / rows['spacy']['seconds']
    print(f'{"":15s} {"cores":>5s} {"MB":>6s} {"tokens":>10s} {"seconds":>8s} {"tokens/s":>10s} {"vs spacy":>8s}')
    for name, r in rows.items():
        speed = r['tokens'] / r['seconds']
        print(f'{name:15s} {r["cores"]:5d} {mb:6.1f} {r["tokens"]:10d} {r["seconds"]:8.2f} {speed:10.0f} {speed/ref:8.2f}')
    print(f'load average after: {os.getloadavg()[0]:.1f}')


if __name__ == '__main__': main()
