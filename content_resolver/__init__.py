"""content-resolver: settings, the composition root, and the ``resolver`` command line."""
