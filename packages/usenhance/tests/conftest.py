import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # on a shared 2-core machine one thread is far faster than two busy-waiting ones
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
