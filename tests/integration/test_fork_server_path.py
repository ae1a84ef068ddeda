"""The fork server and its workers run the parent's copy of osiiso_mp, whatever another
copy their working directory holds: the package's folder is first on their path."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from osiiso_mp._runtime.transports._boot import package_root

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
sys.path.insert(0, {root!r})
import osiiso_mp
from osiiso_mp import Executor
with Executor(procs=1, start_method={method!r}) as ex:
    print(ex.submit(lambda: __import__("osiiso_mp").__file__).result(timeout=30))
print(osiiso_mp.__file__)
"""


def test_package_root_holds_the_package() -> None:
    assert Path(package_root(), "osiiso_mp", "__init__.py").is_file()
    assert Path(package_root()) == ROOT


def test_workers_import_the_parents_copy(tmp_path: Path, start_method: str) -> None:
    """A decoy osiiso_mp in the working directory (on a ``python -c`` process's path
    before the installed packages) is not what the fork server or a worker imports."""
    decoy = tmp_path / "osiiso_mp"
    decoy.mkdir()
    (decoy / "__init__.py").write_text('raise ImportError("the decoy osiiso_mp")\n')
    code = textwrap.dedent(SCRIPT.format(root=str(ROOT), method=start_method))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert proc.returncode == 0, proc.stderr
    in_worker, in_parent = proc.stdout.split()
    assert in_worker == in_parent == str(ROOT / "osiiso_mp" / "__init__.py")
