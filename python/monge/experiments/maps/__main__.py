import sys

from .known_maps import main

sys.exit(main())
