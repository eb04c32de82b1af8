"""Root conftest: the plugin loads through its pytest11 entry point; nothing else is needed here.

``-p pytester`` (pyproject addopts) gives the plugin's own tests the ``pytester`` fixture.
"""
