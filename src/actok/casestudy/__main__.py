import sys

from actok.casestudy.main import main

sys.exit(main())
