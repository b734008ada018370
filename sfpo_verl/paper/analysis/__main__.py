import sys

from sfpo_verl.paper.analysis.cli import main

sys.exit(main())
