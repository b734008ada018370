#!/usr/bin/env python3
"""Prepare the paper's training and evaluation data as verl parquet; see `--help`.

Same as `python -m sfpo_verl.paper.data`; the logic lives in sfpo_verl/paper/data/prepare.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from sfpo_verl.paper.data.prepare import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
