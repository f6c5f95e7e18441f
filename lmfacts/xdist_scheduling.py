"""pytest-xdist scheduling that keeps every (model, device) target's tests on one worker.

xdist's own ``--dist loadgroup`` tags node ids with the ``xdist_group`` mark by assigning
``item._nodeid``, which pytest ≥ 9.2 no longer reads (node ids moved to ``item._id``), so the groups
silently fall apart and every worker loads every model. This scheduler groups by the target part of
the test id instead (``…[RN-1-smollm2-135m-cpu]`` → ``smollm2-135m-cpu``; each revision of a checkpoint
sweep, ``…[RN-1-pythia-160m@step1000-cpu]``, is a target of its own), which works with any pytest. Imported only when xdist is in use.
"""

from __future__ import annotations

import re

from xdist.scheduler.loadscope import LoadScopeScheduling

_CLAIM_PREFIX = re.compile(r"^[A-Z]{2,4}-\d+p?-")


def target_scope(nodeid: str) -> str:
    """The scheduling scope of a test: its target id for parametrised claims, else its module.

    A target id may hold ``@`` itself (``pythia-160m@step1000-cpu``, a revision), so xdist's
    ``@group`` suffix is cut after the parameter's closing ``]``, never at the first ``@``.
    """
    base = nodeid[: nodeid.rindex("]") + 1] if "[" in nodeid and "]" in nodeid else nodeid.split("@")[0]
    if base.endswith("]") and "[" in base:
        param = base[base.rindex("[") + 1 : -1]
        return "target:" + _CLAIM_PREFIX.sub("", param)
    return base.split("::")[0]


class TargetScheduling(LoadScopeScheduling):
    """Load-scope scheduling whose scope is the (model, revision, device) target (see the module docstring)."""

    def _split_scope(self, nodeid: str) -> str:
        return target_scope(nodeid)
