import sys

from pneumo_core.config import quiet_tensorflow

quiet_tensorflow()

from pneumo_core.cli.main import main  # noqa: E402

sys.exit(main())
