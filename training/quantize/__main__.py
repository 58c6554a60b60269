"""`python -m training.quantize`: see `training.quantize.run`."""

from training.quantize.run import main

raise SystemExit(main())
