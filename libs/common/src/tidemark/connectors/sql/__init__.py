"""SQL sources: the shared base split by concern (``config``, ``tables``, ``cursor``, ``plan``,
``arrow``, ``errors``, ``source``) and one package per database beside it."""
