"""`python -m training.teacher`: see `training.teacher.trainer`."""

from training.teacher.trainer import main

raise SystemExit(main())
