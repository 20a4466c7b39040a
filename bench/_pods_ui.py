"""Start `ambient-tui pods` for the benchmark.

It applies the pane variant that pods_bench.py measures (AMBIENT_TUI_BENCH_PANE=virtual):
the change proposed for screens/pods.py, patched in at run time for the benchmark only.

    python bench/_pods_ui.py pods --all-namespaces
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ambient_tui import cli  # noqa: E402


# `pods_bench.py --variants virtual`: measure the change proposed for screens/pods.py,
# applied here at run time; screens/pods.py itself is not changed.
if os.environ.get("AMBIENT_TUI_BENCH_PANE") == "virtual":
    import _virtual_pane

    _virtual_pane.apply()

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
