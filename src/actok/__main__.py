import sys

from actok.cli import main

sys.exit(main())
