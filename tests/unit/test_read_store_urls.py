import pytest

from cqrskit.readstore import open_read_store


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://localhost/x", "unsupported read store URL"),
        ("sqlite:///read.db?synchronus=FULL", "unknown read store URL option"),
        ("sqlite:///read.db?synchronous=SOMETIMES", "synchronous must be"),
        ("sqlite:///read.db?poll_interval=soon", "poll_interval must be a positive number"),
        ("sqlite:///read.db?poll_interval=0", "poll_interval must be a positive number"),
        ("postgresql://localhost/x?pool_size=many", "pool_size must be a positive integer"),
        ("redis://localhost/0?prefx=a", "unknown read store URL option"),
    ],
)
async def test_bad_read_store_urls_say_why(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await open_read_store(url)
