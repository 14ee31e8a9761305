"""Request ids drawn from a pool of the kernel's randomness: well-formed, never repeated, not shared
with a forked child."""

from __future__ import annotations

import os
import uuid

import pytest

from wayport import entropy
from wayport.observability.record import new_log_id


def test_uuid4_is_a_canonical_random_uuid() -> None:
    for _ in range(500):
        text = entropy.uuid4()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_ids_do_not_repeat_across_many_pool_refills() -> None:
    ids = {entropy.uuid4() for _ in range(5_000)}  # 80 kB: the 4 KiB pool is refilled ~20 times
    assert len(ids) == 5_000
    log_ids = [new_log_id() for _ in range(2_000)]
    assert len(set(log_ids)) == 2_000
    assert all(uuid.UUID(value).version == 7 for value in log_ids)


def test_a_request_larger_than_the_pool_is_served_whole() -> None:
    data = entropy.random_bytes(10_000)
    assert len(data) == 10_000
    assert len(set(data)) > 200  # random bytes, not a repeated pad


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    entropy.random_bytes(1)  # the parent's pool now holds unused bytes a naive child would reuse
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.close(read_end)
        os.write(write_end, entropy.uuid4().encode())
        os._exit(0)
    os.close(write_end)
    child_id = os.read(read_end, 100).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert uuid.UUID(child_id).version == 4
    assert child_id != entropy.uuid4()
