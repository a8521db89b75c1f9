"""Property-based tests of the files the command line reads: names files and task files.

Whatever a file holds, ``aquasurf init`` either creates the study from it, or exits with one line
that names the file and the line at fault, and leaves no study file behind. Never a traceback."""
import io
import os
import shutil
import tempfile

from hypothesis import HealthCheck, example, given, settings, strategies as st

import aquasurf_fast as aq
from aquasurf_fast.cli import main
from test_expr_fuzz import canonical, trees

# A tmpfs when there is one: each case creates a study file.
TMP = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
# capsys is read (and so emptied) after each case.
FIXTURES_OK = [HealthCheck.function_scoped_fixture]


def init(capsys, folder, *argv):
    """Run ``aquasurf init`` on a new study in ``folder``; (exit code, stderr, study path)."""
    study = os.path.join(folder, "s.db")
    code = main(["init", study, "--no-progress", *argv])
    return code, capsys.readouterr().err, study


# -- names files -----------------------------------------------------------------------------------

NAME_LINES = st.one_of(
    trees(max_leaves=4).map(canonical),
    trees(max_leaves=3).map(lambda t: " " + canonical(t).replace(",", " , ") + "\t# note"),
    st.sampled_from(["", "   ", "# a comment", "relu(x", "add(x)", "x x", "\ufeffrelu(x)",
                     "tanh(x)\u3000", "unary(x)"]),
    st.text(alphabet="xrelu(),_ #\t\x00é", max_size=12),
    st.text(max_size=8),
)
BAD_BYTES = st.sampled_from([b"\xff", b"\xc3(", b"\x80abc", b"\xed\xa0\x80"])


def expected_names_error(data: bytes):
    """The 1-based line a names file must be refused at, or None when every line is a name,
    a comment or blank: a line that is not UTF-8, or the first whose name does not parse."""
    for number, raw in enumerate(data.split(b"\n"), 1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return number
    # Lines as a text file reads them (a lone '\r' ends a line too).
    for number, line in enumerate(io.StringIO(data.decode("utf-8"), newline=None), 1):
        text = line.split("#", 1)[0].strip()
        if text:
            try:
                aq.parse(text)
            except aq.ParseError:
                return number
    return None


@settings(max_examples=120, deadline=None, suppress_health_check=FIXTURES_OK)
@given(st.lists(NAME_LINES, min_size=0, max_size=6), st.sampled_from(["\n", "\r\n"]),
       st.one_of(st.none(), st.tuples(st.integers(0, 6), BAD_BYTES)))
@example(lines=["relu(x)", "tanh(x)"], newline="\n", bad=(1, b"\xff"))  # found: no file:line
def test_a_names_file_makes_a_study_or_one_error_at_its_line(capsys, lines, newline, bad):
    data = newline.join(lines).encode("utf-8", "surrogatepass")
    if bad is not None:
        chunks = data.split(b"\n")
        at = bad[0] % len(chunks)
        chunks[at] += bad[1]
        data = b"\n".join(chunks)
    folder = tempfile.mkdtemp(dir=TMP)
    try:
        names = os.path.join(folder, "names.txt")
        with open(names, "wb") as f:
            f.write(data)
        code, err, study = init(capsys, folder, "--names", names)
        line = expected_names_error(data)
        if line is None:
            assert code == 0, err
            with aq.Study(study) as s:
                for text in io.StringIO(data.decode("utf-8"), newline=None):
                    text = text.split("#", 1)[0].strip()
                    if text:
                        s.class_of(text)  # every name of the file is in the space
        else:
            assert code == 1 and err.count("\n") == 1, err
            assert f"aquasurf init: error: {names}:{line}: " in err, (line, err)
            assert not os.path.exists(study)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- task files ------------------------------------------------------------------------------------

GOOD = {
    "import": "import torch",
    "build": "def build(activation):\n    return torch.nn.Sequential(torch.nn.Linear(3, 2), "
             "activation)",
    "fisher_batch": "def fisher_batch():\n    return torch.randn(4, 3), torch.tensor([0, 1, 0, 1])",
    "train_eval": "def train_eval(activation, seed=0):\n    return {'val_acc': 0.5}",
    "resources": "RESOURCES = {'num_gpus': 0}",
    "comment": "# a task file",
}
# Statements that break a task file: (text, what the error says, its line that fails). Where a
# syntax error is reported is Python's own parser's business: compile() tells the test.
BAD = [
    ("def build(:\n    pass", "SyntaxError", 0),
    ("train_eval = lambda activation: (", "SyntaxError", 0),
    ("    indented = 1", "IndentationError", 0),
    ("raise RuntimeError('broken at import')", "RuntimeError: broken at import", 0),
    ("ratio = 1 / 0", "ZeroDivisionError", 0),
    ("import not_a_module_anyone_has", "ModuleNotFoundError", 0),
    ("import sys\nsys.exit(3)", "SystemExit", 1),
    ("torch.nonexistent_function()", "AttributeError", 0),
]


def expected_task_error(source, blocks, starts):
    """(line, words) of the error a task file must be refused with, or None when it imports."""
    try:
        compile(source, "task.py", "exec")
    except SyntaxError as exc:
        return exc.lineno, type(exc).__name__
    for block, start in zip(blocks, starts):
        for text, words, offset in BAD:
            if block == text:
                return start + offset, words
    return None


@settings(max_examples=80, deadline=None, suppress_health_check=FIXTURES_OK)
@given(st.lists(st.sampled_from(sorted(GOOD)), max_size=6),
       st.lists(st.tuples(st.integers(0, 6), st.sampled_from(range(len(BAD)))), max_size=2),
       st.booleans())
@example(good=["build", "fisher_batch", "train_eval"], bad=[(0, 6)], bad_resources=False)
def test_a_task_file_makes_a_study_or_one_error_at_its_line(capsys, good, bad, bad_resources):
    blocks = [GOOD["import"]] + [GOOD[k] for k in good]
    if bad_resources:
        blocks.append("RESOURCES = 3")
    for at, which in bad:
        blocks.insert(1 + at % len(blocks), BAD[which][0])  # after "import torch"
    lines, starts = [], []
    for block in blocks:
        starts.append(len(lines) + 1)
        lines.extend(block.split("\n"))
    folder = tempfile.mkdtemp(dir=TMP)
    try:
        task = os.path.join(folder, "task.py")
        with open(task, "w") as f:
            f.write("\n".join(lines) + "\n")
        code, err, study = init(capsys, folder, "--task", task, "--schema", "unary(x)",
                                "--unary", "relu,tanh")
        first = expected_task_error("\n".join(lines) + "\n", blocks, starts)
        if first is not None:
            line, words = first
            assert code == 1 and err.count("\n") == 1, err
            assert f"task file {task}:{line}: " in err and words in err, (line, err)
            assert not os.path.exists(study)
            return
        missing = [k for k in ("build", "fisher_batch", "train_eval") if k not in good]
        if missing:
            assert code == 1 and err.count("\n") == 1 and f"lacks {missing[0]}" in err, err
        elif bad_resources:
            assert code == 1 and err.count("\n") == 1 and "RESOURCES must be a dict" in err, err
        else:
            assert code == 0, err
            with aq.Study(study) as s:
                assert s.settings["task"] == task
        assert os.path.exists(study) == (code == 0)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
