"""How the CLI's processes import torch (``inflate3d.torch_import``) and end (``inflate3d.cli.script``).

Each case runs in a fresh interpreter: the collector's state and the interpreter's teardown are
per process.
"""
from __future__ import annotations

import json
import subprocess
import sys

PY = sys.executable

COUNT_FULL_COLLECTIONS = (
    "import gc, sys\n"
    "full = []\n"
    "gc.callbacks.append(lambda phase, info: phase == 'start' and info['generation'] == 2 and full.append(1))\n")


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-c", code, *args], capture_output=True, text=True, timeout=300)


def test_a_plain_torch_import_runs_full_collections():
    """The control for the next test: without the pause, the collector walks the import's objects."""
    r = _python(COUNT_FULL_COLLECTIONS + "import torch\nprint(len(full))")
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) >= 1


def test_import_torch_runs_no_full_collection_and_freezes_what_the_import_made():
    r = _python(COUNT_FULL_COLLECTIONS + "from inflate3d.torch_import import import_torch\n"
                "torch = import_torch()\n"
                "print(len(full), gc.isenabled(), gc.get_freeze_count(), torch is sys.modules['torch'])")
    assert r.returncode == 0, r.stderr
    full, enabled, frozen, same = r.stdout.split()
    assert (full, enabled, same) == ("0", "True", "True")
    assert int(frozen) > 100_000  # torch's objects, out of every later collection's way


def test_import_torch_leaves_an_imported_torch_alone():
    r = _python("import gc, torch\nfrom inflate3d.torch_import import import_torch\n"
                "import_torch()\nprint(gc.get_freeze_count(), gc.isenabled())")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "True"]


def test_import_torch_keeps_a_paused_collector_paused():
    r = _python("import gc\ngc.disable()\nfrom inflate3d.torch_import import import_torch\n"
                "import_torch()\nprint(gc.isenabled())")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False"]


# A probe whose finaliser runs only in the interpreter's teardown: a module global.
PROBE = ("import atexit, os, sys, threading, time\n"
         "import inflate3d.cli as cli\n"
         "class Probe:\n"
         "    def __del__(self, write=os.write):\n"
         "        write(1, b'teardown ran\\n')\n"
         "cli._probe = Probe()\n"
         "atexit.register(lambda: print('atexit ran'))\n")


def _script(argv: list[str], before: str = "") -> subprocess.CompletedProcess:
    return _python(PROBE + before + f"sys.argv = ['inflate3d', *{argv!r}]\ncli.script()")


def test_the_command_skips_the_teardown_but_runs_atexit_and_flushes_its_output():
    r = _script(["archs", "--json"])
    assert r.returncode == 0, r.stderr
    document, tail = r.stdout.rsplit("\n", 2)[0], r.stdout.rsplit("\n", 2)[1:]
    assert json.loads(document)["archs"]  # the whole document arrived (through a pipe, block-buffered)
    assert tail == ["atexit ran", ""]
    assert "teardown ran" not in r.stdout


def test_the_teardown_probe_does_report_a_normal_exit():
    """The control for the test above: a thread still running means the normal exit, teardown included."""
    # a thread that outlives the command however long it takes: it ends when the interpreter's exit
    # stops the main thread (a fixed sleep was outlived by a command on a loaded machine)
    r = _script(["archs"], before="threading.Thread(target=lambda: [time.sleep(0.01) for _ in "
                                  "iter(threading.main_thread().is_alive, False)]).start()\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("atexit ran\nteardown ran\n")


def test_exit_codes_survive_the_fast_exit(tmp_path):
    missing = tmp_path / "missing.safetensors"
    r = _script(["inspect", str(missing)])
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and str(missing) in r.stderr
    assert "teardown ran" not in r.stdout
    r = _script(["--no-such-option"])
    assert r.returncode == 2 and "teardown ran" not in r.stdout


def test_a_reader_that_closed_the_pipe_gets_one_line_and_exit_1():
    """As before the fast exit: the command's own write fails, it says so in one line."""
    proc = subprocess.Popen([PY, "-m", "inflate3d", "archs", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # nobody reads: the command's first write fails with EPIPE
    _, err = proc.communicate(timeout=300)
    assert (proc.returncode, err) == (1, b"error: Broken pipe\n")


def test_every_command_that_needs_torch_imports_it_paused_and_frozen(tmp_path):
    """A command that imports torch before ``import_torch`` runs (an ``import torch`` moved up a
    line) loses the pause and the freeze: 0.13 s of a convert here."""
    from safetensors.torch import save_file

    from inflate3d.slowfast import build_model

    model = build_model("slowonly_r18", num_classes=3, init=False, base_channels=2)
    native = tmp_path / "native.safetensors"
    save_file({k: v.detach().clone() for k, v in model.state_dict().items()}, str(native))
    frozen_at_exit = ("import atexit, gc, os\n"
                      "atexit.register(lambda: os.write(2, f'FROZEN {gc.get_freeze_count()}\\n'.encode()))\n"
                      "import sys, inflate3d.cli as cli\nsys.argv = ['inflate3d', *sys.argv[1:]]\ncli.script()")
    for argv, code in ((["convert", native, "-o", tmp_path / "out.safetensors"], 0),
                       (["convert", native, "--to", "pyslowfast", "-o", tmp_path / "out.pyth"], 0),
                       (["diff", native, tmp_path / "out.safetensors"], 0),
                       (["verify", native, "--against", "seeded:resnet18:0"], 1),
                       (["inspect", native, "--values"], 0)):
        r = _python(frozen_at_exit, *map(str, argv))
        assert r.returncode == code, (argv, r.stderr)
        assert int(r.stderr.rsplit("FROZEN ", 1)[1].split()[0]) > 100_000, argv


def test_output_that_cannot_be_flushed_leaves_the_exit_to_python():
    """``_leave`` steps aside before running anything: Python's own exit then runs the atexit
    handlers once, tears down, and reports the failed flush itself."""
    code = ("import os, sys\nimport inflate3d.cli as cli\n"
            "class Unflushable:\n"
            "    def write(self, s):\n        return len(s)\n"
            "    def flush(self):\n        raise OSError('the disk is full')\n"
            "sys.stdout = Unflushable()\n"
            "import atexit\natexit.register(lambda: os.write(2, b'atexit ran\\n'))\n"
            "class Probe:\n    def __del__(self, write=os.write):\n        write(2, b'teardown ran\\n')\n"
            "cli._probe = Probe()\n"
            "cli._leave(0)\nos.write(2, b'left to python\\n')")
    r = _python(code)
    assert r.stderr.startswith("left to python\natexit ran\n"), r.stderr
    assert r.stderr.count("atexit ran") == 1 and "teardown ran" in r.stderr
    assert r.returncode == 120  # Python's code for a final flush that failed
