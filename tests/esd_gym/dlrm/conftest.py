import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # The test machines share two cores between several jobs.
    torch.set_num_threads(1)
