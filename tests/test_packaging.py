"""The installed package carries what its commands read: every module, every config, the job
templates; and it runs from outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_every_module_config_and_template_and_runs_outside_the_checkout(tmp_path):
    # --no-build-isolation: the build uses the installed setuptools; nothing is downloaded.
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(REPO)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("jepa-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(p.relative_to(REPO)) for p in (REPO / "jepa").rglob("*.py")}
    configs = {"jepa/configs/" + str(p.relative_to(REPO / "configs")) for p in (REPO / "configs").rglob("*.yaml")}
    templates = {"jepa/templates/slurm.sbatch", "jepa/templates/torchrun.sh"}
    assert not modules - names, sorted(modules - names)  # a new subpackage missing from pyproject's list
    assert configs and not configs - names, sorted(configs - names)
    assert not templates - names
    # Installed elsewhere (here: unpacked and put first on the path), away from the checkout.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    script = ("import sys, jepa; assert jepa.__file__.startswith(sys.argv[1]), jepa.__file__; from jepa.cli import main;"
              "from jepa.shipped import resolve_config, template; print(resolve_config('configs/quickstart.yaml'));"
              "print(template('slurm.sbatch')); sys.exit(main(['configs', 'list']))")
    run = subprocess.run([sys.executable, "-c", script, str(site)], capture_output=True, text=True, cwd=tmp_path,
                         env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert lines[0] == str(site / "jepa" / "configs" / "quickstart.yaml")
    assert lines[1] == str(site / "jepa" / "templates" / "slurm.sbatch")
    assert any(line.startswith("planning/two_rooms_world ") for line in lines[2:])
