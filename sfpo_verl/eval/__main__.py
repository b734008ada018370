import sys

from sfpo_verl.eval.cli import main

sys.exit(main())
