"""gristmill tests; a package so test modules import shared helpers as `tests.helpers`."""
