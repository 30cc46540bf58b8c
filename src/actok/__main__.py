import sys

from actok._entry import main

sys.exit(main())
