"""pytest: run the notebooks (nbmake) on their small settings; the kernels inherit this."""

import os

os.environ.setdefault("RPJAX_NOTEBOOK_QUICK", "1")
