"""The wheel carries the whole suite: engine, catalogue (``lmfacts.catalogue``) and data (``lmfacts.fixtures``).

The slow test builds the wheel from the working tree (offline: ``pip wheel --no-build-isolation`` with the
setuptools of this environment), installs it into a fresh virtualenv outside the checkout (torch,
transformers … come from this environment's site-packages through a ``.pth`` file; lmfacts itself only
from the wheel) and runs one claim with ``pytest --pyargs lmfacts.catalogue`` from a temporary directory.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.helpers import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
IGNORED = {"__pycache__"}


def _source_files(directory: Path) -> list[Path]:
    """Every file under ``directory`` except caches (what the wheel has to carry), relative to it."""
    return sorted(p.relative_to(directory) for p in directory.rglob("*")
                  if p.is_file() and not IGNORED & set(p.parts) and p.suffix != ".pyc")


def _expected_wheel_files() -> set[str]:
    """Wheel paths of every claim module and every data file of the checkout."""
    out = {f"lmfacts/catalogue/{p.as_posix()}" for p in _source_files(REPO / "claims")}
    out |= {f"lmfacts/fixtures/{p.as_posix()}" for p in _source_files(REPO / "fixtures")}
    return out


def test_every_lmfacts_subpackage_and_both_mapped_directories_are_packaged() -> None:
    """The package list is explicit (two directories are renamed): a new subpackage must be added to it."""
    packages = set(SETUPTOOLS["packages"])
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "lmfacts").rglob("__init__.py")
               if not IGNORED & set(p.parts)}
    missing = sorted(on_disk - packages)
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml (else the wheel lacks them)"
    assert SETUPTOOLS["package-dir"] == {"lmfacts.catalogue": "claims", "lmfacts.fixtures": "fixtures"}
    assert {"lmfacts.catalogue", "lmfacts.fixtures"} <= packages


def test_every_data_file_matches_a_package_data_glob() -> None:
    """A file added under fixtures/ that no package-data glob names would silently be left out of the wheel."""
    globs = SETUPTOOLS["package-data"]["lmfacts.fixtures"]
    data = [p for p in _source_files(REPO / "fixtures") if p.suffix != ".py"]
    assert data, "fixtures/ holds no data?"
    unshipped = [p.as_posix() for p in data if not any(p.match(g) for g in globs)]
    assert not unshipped, f"not shipped by [tool.setuptools.package-data] 'lmfacts.fixtures' {globs}: {unshipped}"


def test_paths_resolve_to_the_checkout_here() -> None:
    """In the checkout (editable install) the data paths are the repository's own directories."""
    from lmfacts.baselines import default_dir as baselines_dir
    from lmfacts.expectations import default_dir as expectations_dir
    from lmfacts.models.names import TINY_CONFIG_DIR
    from lmfacts.prompts.corpus import BUILTIN_CORPUS_PATH
    from lmfacts.resources import catalogue_dir

    env = {k: os.environ.pop(k) for k in ("LMFACTS_EXPECTATIONS_DIR", "LMFACTS_BASELINES_DIR") if k in os.environ}
    try:
        assert expectations_dir() == REPO / "fixtures" / "expectations"
        assert baselines_dir() == REPO / "fixtures" / "baselines"
    finally:
        os.environ.update(env)
    assert BUILTIN_CORPUS_PATH == REPO / "fixtures" / "prompts" / "corpus.jsonl" and BUILTIN_CORPUS_PATH.is_file()
    assert TINY_CONFIG_DIR == REPO / "fixtures" / "tiny_models" and (TINY_CONFIG_DIR / "tiny-gpt2.json").is_file()
    assert catalogue_dir() == REPO / "claims"


def _build_blocker() -> str | None:
    """Why a wheel cannot be built offline here, or None."""
    if importlib.util.find_spec("pip") is None:
        return "pip is not installed in this environment"
    if importlib.util.find_spec("setuptools") is None:
        return "setuptools is not installed in this environment (needed for an offline --no-build-isolation build)"
    from importlib.metadata import version

    if int(version("setuptools").split(".")[0]) < 77:
        return f"setuptools {version('setuptools')} < 77 (pyproject.toml's build-system requires setuptools>=77)"
    return None


#: Loaded with ``-p`` in the installed run: records where everything it imported came from.
ORIGIN_PLUGIN = '''
import json, os, sys

def pytest_sessionfinish(session, exitstatus):
    import lmfacts
    from lmfacts.claims import CLAIMS
    from lmfacts.expectations import default_dir as e
    from lmfacts.baselines import default_dir as b
    from lmfacts.prompts.corpus import BUILTIN_CORPUS_PATH
    from lmfacts.models.names import TINY_CONFIG_DIR
    mods = {n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())
            if n == "claims" or n.startswith(("claims.", "lmfacts.catalogue"))}
    out = {"lmfacts": lmfacts.__file__, "modules": mods, "claims": {k: v.function for k, v in CLAIMS.items()},
           "expectations": str(e()), "baselines": str(b()), "corpus": str(BUILTIN_CORPUS_PATH),
           "tiny": str(TINY_CONFIG_DIR), "sys_path": sys.path}
    with open(os.environ["ORIGIN_OUT"], "w") as f:
        json.dump(out, f)
'''


def test_wheel_installs_and_runs_a_claim_outside_the_checkout(tmp_path: Path) -> None:
    blocker = _build_blocker()
    if blocker:
        pytest.skip(f"cannot build the wheel offline: {blocker}")
    # 1. build from a copy of the working tree (no build/ or egg-info left in the checkout, none reused)
    src, dist = tmp_path / "src", tmp_path / "dist"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("lmfacts", "claims", "fixtures"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-w", str(dist), str(src)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = dist.glob("lmfacts-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(_expected_wheel_files() - names)
    assert not missing, f"the wheel lacks {missing}"
    assert not any(n.startswith(("claims/", "fixtures/")) for n in names), "one copy: only under lmfacts/"
    assert "lmfacts.plugin" in zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()

    # 2. a fresh venv outside the checkout; dependencies from this environment, lmfacts only from the wheel
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    vpy = venv / "bin" / "python"
    site = Path(subprocess.run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "_lmfacts_test_deps.pth").write_text("".join(f"{p}\n" for p in deps))
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "LMFACTS_EXPECTATIONS_DIR", "LMFACTS_BASELINES_DIR", "PYTEST_ADDOPTS",
                        "PYTEST_XDIST_WORKER", "PYTEST_PLUGINS", "VIRTUAL_ENV")}
    # --ignore-installed: never touch the editable lmfacts this environment holds (it is visible via the .pth)
    install = subprocess.run([str(vpy), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
                              str(wheel)], capture_output=True, text=True, timeout=300, env=env)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    assert (site / "lmfacts" / "catalogue" / "test_rn_norm_growth.py").is_file()

    # 3. run one fast claim from a temporary directory, by package name; the venv sits inside the user's own
    #    git repository (a project's .venv), whose sha must not become the run id
    work = tmp_path / "elsewhere"
    work.mkdir()
    git_env = dict(env, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    for cmd in (["git", "init", "-q"], ["git", "commit", "-q", "--allow-empty", "-m", "user project"]):
        subprocess.run(cmd, cwd=tmp_path, check=True, env=git_env, timeout=60)
    (work / "origin_probe.py").write_text(ORIGIN_PLUGIN)
    origin_out = tmp_path / "origin.json"
    run_env = dict(env, PYTHONPATH=str(work), ORIGIN_OUT=str(origin_out))
    proc = subprocess.run([str(vpy), "-m", "pytest", "--pyargs", "lmfacts.catalogue", "--model", "tiny-gpt2",
                           "-k", "RN-8", "-p", "no:cacheprovider", "-p", "origin_probe",
                           "--report-dir", str(work / "reports")],
                          cwd=work, env=run_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    assert "1 passed" in proc.stdout, proc.stdout[-3000:]
    (run_dir,) = (work / "reports").iterdir()
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]
    assert [(r["claim"], r["model"], r["outcome"]) for r in records] == [("RN-8", "tiny-gpt2", "passed")]
    assert run_dir.name.endswith("-nogit"), run_dir.name  # not the sha of the repository around the venv
    # the nodeid is relative to the package: the record names the installed file, which the replay command uses
    assert Path(records[0]["test_file"]) == (site / "lmfacts" / "catalogue" / "test_rn_norm_growth.py").resolve()

    # 4. everything came from the installed wheel, nothing from the checkout
    origin = json.loads(origin_out.read_text())
    installed = str(site / "lmfacts")
    assert origin["lmfacts"].startswith(installed), origin["lmfacts"]
    assert origin["claims"]["RN-8"].startswith("lmfacts.catalogue.test_rn_norm_growth."), origin["claims"]["RN-8"]
    assert origin["modules"], "no catalogue module was imported?"
    for name, file in origin["modules"].items():
        assert name.startswith("lmfacts.catalogue") and file.startswith(installed), (name, file)
    for key in ("expectations", "baselines", "corpus", "tiny"):
        assert origin[key].startswith(str(site / "lmfacts" / "fixtures")), (key, origin[key])
    assert not any(Path(p).resolve() == REPO for p in origin["sys_path"] if p), origin["sys_path"]
    run_json = json.loads((run_dir / "run.json").read_text())
    assert run_json["run"]["corpus"]["source"].startswith(installed)

    # 5. the installed CLI reads the installed catalogue too
    listing = subprocess.run([str(vpy), "-m", "lmfacts", "claims", "list", "--json"], cwd=work, env=env,
                             capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stdout[-2000:] + listing.stderr[-2000:]
    assert "RN-8" in listing.stdout and "RN-1" in listing.stdout
