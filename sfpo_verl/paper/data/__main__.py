import sys

from sfpo_verl.paper.data.prepare import main

sys.exit(main())
