"The `coursekit` command, run as a student runs it."
import json, subprocess, sys
from pathlib import Path

from conftest import REPO

EXE = str(Path(sys.executable).parent/'coursekit')


def _nb(path, *cells):
    path.write_text(json.dumps({'cells': [{'cell_type': 'code', 'execution_count': None, 'id': f'c{i}', 'metadata': {},
                                           'outputs': [], 'source': s} for i, s in enumerate(cells)],
                                'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}))
    return path


def test_lists_lessons():
    r = subprocess.run([EXE, 'lesson'], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0 and 'sgd' in r.stdout and '10_sgd_1_linear.ipynb' in r.stdout


def test_unknown_lesson():
    r = subprocess.run([EXE, 'lesson', 'pets-on-mars'], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "no lesson 'pets-on-mars'" in r.stderr and 'sgd' in r.stderr


def test_runs_a_notebook_and_saves_its_plots(tmp_path):
    nb = _nb(tmp_path/'plot.ipynb', "import matplotlib.pyplot as plt\nplt.plot([3, 1, 2]);", "print(6*7)")
    r = subprocess.run([EXE, 'lesson', str(nb), '--out', str(tmp_path/'runs')], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cells = json.loads((tmp_path/'runs'/'plot.ipynb').read_text())['cells']
    assert any('image/png' in o.get('data', {}) for o in cells[0]['outputs'])
    assert cells[1]['outputs'][0]['text'] == ['42\n']


def test_failing_notebook_exits_nonzero_and_keeps_outputs(tmp_path):
    nb = _nb(tmp_path/'bad.ipynb', "print('before')", "raise ValueError('broken on purpose')", "print('after')")
    r = subprocess.run([EXE, 'lesson', str(nb), '--out', str(tmp_path/'runs')], capture_output=True, text=True)
    assert r.returncode == 1 and 'broken on purpose' in r.stderr and 'failed' in r.stderr
    cells = json.loads((tmp_path/'runs'/'bad.ipynb').read_text())['cells']
    assert cells[0]['outputs'][0]['text'] == ['before\n'] and cells[2]['outputs'] == []


def test_outside_a_clone_needs_nbs(tmp_path):
    r = subprocess.run([EXE, 'lesson', 'sgd', '--nbs', str(tmp_path/'nowhere')], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and 'nowhere' in r.stderr
