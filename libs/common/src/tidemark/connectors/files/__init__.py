"""File sources (object stores): what every store shares, split by concern (``config``, ``listing``,
``formats``, ``schema``, ``ledger``, ``source``), and one package per store beside it (``s3``, ``azure_blob``)."""
