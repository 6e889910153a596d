"""A stage's library chatter goes to its log: warnings, log records, and whatever is written to
file descriptor 2 directly (torch's own stderr handler, C code, child processes)."""

import logging
import os
import subprocess
import sys
import threading
import warnings

from runner.logs import library_output_to


def test_warnings_records_and_descriptor_two_go_to_the_log(tmp_path, capfd):
    log = tmp_path / "logs" / "stage.log"
    with library_output_to(log):
        warnings.warn("a library warning", UserWarning, stacklevel=1)
        logging.getLogger("torchao").warning("Failed to load _C_mxfp8")
        os.write(2, b"W1130 _pytree.py:630] written to fd 2\n")
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('from a child\\n')"])
    os.write(2, b"after the block\n")
    terminal = capfd.readouterr()
    text = log.read_text()
    for line in ("a library warning", "Failed to load _C_mxfp8", "written to fd 2", "from a child"):
        assert line in text
        assert line not in terminal.err + terminal.out
    assert "after the block" in terminal.err
    assert "after the block" not in text


def test_threads_leave_the_descriptor_alone(tmp_path, capfd):
    def stage():
        with library_output_to(tmp_path / "t.log"):
            pass

    worker = threading.Thread(target=stage)
    worker.start()
    worker.join()
    os.write(2, b"still the terminal\n")
    assert "still the terminal" in capfd.readouterr().err
