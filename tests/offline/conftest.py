"""One torch thread for these tests: on a shared, oversubscribed CPU the default pool is far slower."""

import pytest


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    yield
