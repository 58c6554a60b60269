"""`python -m training.data report|split ...`: see `training.data.report`."""

from training.data.report import main

raise SystemExit(main())
