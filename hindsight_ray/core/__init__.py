"""Pure building blocks every layer shares: where an experiment lives (``location``)."""
