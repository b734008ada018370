import sys

from sfpo_verl.data.prepare import main

sys.exit(main())
