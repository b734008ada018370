import sys

from sfpo_verl.analysis.cli import main

sys.exit(main())
