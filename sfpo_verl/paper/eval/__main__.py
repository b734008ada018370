import sys

from sfpo_verl.paper.eval.cli import main

sys.exit(main())
