import sys

from actok.policy.main import main

sys.exit(main())
