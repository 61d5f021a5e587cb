"""The ``mlcycle`` command: the top layer, over the pipelines, the servers and the core library."""
