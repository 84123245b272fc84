import sys

from tracescore.scoring.cli import main

sys.exit(main())
