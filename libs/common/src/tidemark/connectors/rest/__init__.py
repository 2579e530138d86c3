"""REST sources: one HTTP layer (``http``: retries, rate limit, errors; ``auth``; ``paging``),
records to Arrow (``records``), the shared source base (``source``), and one package per vendor."""
