"""Figure specs, the light import of the package, and the screenshot script."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lmfacts.report.figures import figure_data_uri, figure_png
from lmfacts.report.render import render_run
from lmfacts.report.synthetic import write_synthetic_run

REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_figure_styles_and_nulls():
    spec = {
        "id": "f", "title": "$not math$ <b>", "xlabel": "layer", "ylabel": "norm", "logx": True, "logy": True,
        "series": [
            {"label": "_starts with underscore", "x": [1, 2, 3], "y": [1.0, None, 100.0], "style": "line"},
            {"label": "band", "x": [1, 2, 3], "y": [0.5, 1, 2], "y2": [2, 3, 400], "style": "band"},
            {"label": "pts", "x": [1, 2, 3], "y": [0, -1, 5], "style": "points"},  # non-positive on log axis
            {"label": "d", "x": [1, 3], "y": [1, 50], "style": "dashed"},
        ],
        "vspans": [{"lo": 1.5, "hi": 2.5, "label": "window"}],
    }
    assert figure_png(spec).startswith(PNG_MAGIC)
    assert figure_data_uri(spec).startswith("data:image/png;base64,iVBOR")


def test_categorical_x_and_missing_x():
    assert figure_png({"series": [{"x": ["W_Q", "W_K", "W_V"], "y": [1, 2, 3]}]}).startswith(PNG_MAGIC)
    assert figure_png({"series": [{"y": [1, 2, 3]}]}).startswith(PNG_MAGIC)


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"series": [{"x": [1, 2], "y": [1]}]}, "len"),
        ({"series": [{"x": [1], "y": [1], "style": "bars"}]}, "unknown style"),
        ({"series": [{"x": [1], "y": [1], "style": "band"}]}, "y2"),
        ({"series": [], "vspans": [{"lo": None, "hi": 1}]}, "vspan"),
        ("not a dict", "object"),
    ],
)
def test_bad_specs_raise(spec, match):
    with pytest.raises(ValueError, match=match):
        figure_png(spec)


def test_package_import_is_light():
    code = "import sys, lmfacts.report; print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                         check=True).stdout.split()
    assert out == ["False", "False"]


def _load_script():
    spec = importlib.util.spec_from_file_location("screenshot_report", REPO / "scripts" / "screenshot_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_screenshot_command_is_offline(tmp_path):
    mod = _load_script()
    cmd = mod.screenshot_command("chromium", tmp_path / "r.html", tmp_path / "o.png", tmp_path / "p", 1400, 3000)
    assert "--headless" in cmd and "--disable-background-networking" in cmd
    assert f"--screenshot={tmp_path / 'o.png'}" in cmd and cmd[-1].startswith("file://")
    assert mod.main([str(tmp_path / "missing.html"), str(tmp_path / "o.png")]) == 2


@pytest.mark.skipif(not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")),
                    reason="no chromium installed")
def test_screenshot_of_synthetic_report(tmp_path):
    html = render_run(write_synthetic_run(tmp_path / "20250101T000000Z-nogit"))["html"]
    out = tmp_path / "shot.png"
    assert _load_script().main([str(html), str(out), "--height", "1200"]) == 0
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000
