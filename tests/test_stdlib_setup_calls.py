"""A standard library module's function called at a cell's top level for what it does to the process
(its result dropped, given only literals and the module's own constants) is a change of that module's
state (``options:<module>``), as a library's options are: such steps keep notebook order, and a new
kernel restoring them replays them, so the process holds Run All's state.

Found by the corpus (py_logging, the Python documentation's logging how-to): cell12's
``logging.config.fileConfig('logging.conf')`` gives the ``simpleExample`` logger a handler and a level;
a new kernel resuming from the store restored ``logger`` by its pickle (``getLogger('simpleExample')``)
without them, as a fresh process has it (resume, values: ``logger``). Each run below is a new process
(a real IPython shell on a real directory store).
"""

from __future__ import annotations

from conftest import shell_on_store

from nbsteps.model.analysis import analyse_cell

CONF = """[loggers]
keys=root,simpleExample

[handlers]
keys=consoleHandler

[formatters]
keys=simpleFormatter

[logger_root]
level=DEBUG
handlers=consoleHandler

[logger_simpleExample]
level=DEBUG
handlers=consoleHandler
qualname=simpleExample
propagate=0

[handler_consoleHandler]
class=StreamHandler
level=DEBUG
formatter=simpleFormatter
args=(sys.stdout,)

[formatter_simpleFormatter]
format=%(name)s - %(levelname)s - %(message)s
"""

CELLS = [
    "%%step config\nimport logging\nimport logging.config\n\nlogging.config.fileConfig('logging.conf')\n"
    "logger = logging.getLogger('simpleExample')",
    "%%step shout\nlevel = logger.level",
    "_ = logger",  # an ordinary cell reading it (a lazily restored value is read when used)
]

REPORT = """
import logging
logger = ip.user_ns["logger"]
out["origin"] = {n: plan[n].origin for n in plan.steps}
out["handlers"] = [type(h).__name__ for h in logger.handlers]
out["level"] = logger.level
"""


def test_a_logging_configuration_is_replayed_in_a_new_kernel(tmp_path, tmp_key):
    (tmp_path / "logging.conf").write_text(CONF)
    first = shell_on_store(tmp_path / "store", CELLS, tmp_path, REPORT)
    assert first["handlers"] == ["StreamHandler"] and first["level"] == 10
    again = shell_on_store(tmp_path / "store", CELLS, tmp_path, REPORT)
    # as after Run All: the logger has the handler and the level the configuration file gives it
    assert again["handlers"] == ["StreamHandler"] and again["level"] == 10, again
    assert again["origin"]["shout"] in ("restored", "kept")


def test_which_calls_are_changes_of_a_standard_library_modules_state():
    def labels(code):
        a = analyse_cell("c", code)
        return set(a.state), set(a.effects)

    assert labels("import logging\nlogging.basicConfig(format='%(message)s', level=logging.DEBUG)") == (
        {"options:logging"},
        {"options:logging"},
    )
    assert labels("import warnings\nwarnings.simplefilter('ignore')")[1] == {"options:warnings"}
    # (the use of the configuration, a message, keeps its order with it)
    assert labels("import logging\nlogging.warning('Watch out!')")[1] == {"options:logging"}
    # a result used, a notebook value given, a file, a pause, an output: none
    assert labels("import logging\nlog = logging.getLogger('x')") == (set(), set())
    assert labels("import logging\nlogging.warning(message)") == (set(), set())
    assert labels("import time\ntime.sleep(0.1)") == (set(), set())
    assert labels("import sys\nsys.stdout.write('hi')") == (set(), set())
    assert "options:os" not in labels("import os\nos.remove('a.csv')")[1]


def test_calls_with_effects_outside_the_process_are_not_module_state():
    """A replay in a new kernel makes a call again: a download (an address given) or a file
    system operation (os, shutil, pathlib...) is an effect outside the process, not state the
    module keeps, so it is never labelled ``options:<module>`` (which a resume replays)."""

    def options(code):
        return {label for label in analyse_cell("c", code).state if label.startswith("options:")}

    assert (
        options("import urllib.request\nurllib.request.urlretrieve('https://example.org/d.csv', 'd.csv')")
        == set()
    )
    assert options("import os\nos.symlink('data.csv', 'latest.csv')") == set()
    assert options("import shutil\nshutil.copyfile('a.csv', 'b.csv')") == set()
    assert options("import warnings\nwarnings.filterwarnings('ignore')") == {"options:warnings"}
