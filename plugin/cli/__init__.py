"""The ``latentbrush`` command: a headless host of the plugin core (see ``main.py``)."""
