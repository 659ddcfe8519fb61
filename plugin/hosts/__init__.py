"""Host adapters: each subpackage (``krita``, ``gimp``) or module (``headless``) implements ``core.host.Host``."""
