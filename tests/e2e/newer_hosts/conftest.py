"""Registers the ``newer_hosts`` marker (the repo runs pytest with --strict-markers)."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "newer_hosts: runs Krita 6 / GIMP 3 in debootstrap chroots (root, Debian mirror, minutes)"
    )
