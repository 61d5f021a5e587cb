import sys

from mlcycle.cli import main

sys.exit(main())
