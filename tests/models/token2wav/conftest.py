"""token2wav tests run single-threaded.

The tiny models here do thousands of small ops; with 2 intra-op threads on a shared
2-core machine every op pays an OpenMP barrier wait (measured: 4.3 s vs 0.04 s for one
tiny flow synthesis), so one thread is both faster and steadier.
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
