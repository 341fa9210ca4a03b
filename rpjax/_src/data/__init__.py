"""Private implementation of `rpjax.data`: the bundled data sets and the loaders."""

from rpjax._src.data import insurance, olivetti

BUNDLED_SHA256 = {"insurance": insurance.SHA256, "olivetti": olivetti.SHA256}
"""The sha256 of each bundled data file, by data set (`insurance.csv` of `load_insurance()`,
`olivettifaces.mat` of `load_olivetti()`): the loaders check it; experiments key their cached
models by it."""
