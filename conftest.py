"""Root conftest: loads the lmfacts plugin in an un-installed checkout.

When lmfacts is pip-installed, its ``pytest11`` entry point registers the plugin instead, and
loading it here a second time would clash.
"""

from importlib.metadata import entry_points


def _plugin_installed() -> bool:
    return any(ep.name == "lmfacts" for ep in entry_points(group="pytest11"))


pytest_plugins = [] if _plugin_installed() else ["lmfacts.plugin"]
