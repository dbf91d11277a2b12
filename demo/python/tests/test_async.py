"""faas_client.AsyncClient: awaitable results for asyncio programs."""

import asyncio

import pytest

import faas_client as faas
from remote_functions import Oops, fail, nap, square


def test_run_submit_and_map(stack):
    async def main():
        async with faas.AsyncClient(stack.url) as client:
            assert await client.run(square, 7) == 49
            futures = [await client.submit(nap, 0.1, i) for i in range(5)]
            assert await asyncio.gather(*futures) == [0, 1, 2, 3, 4]
            assert await client.map(square, range(300), chunksize=100) == [i * i for i in range(300)]
            # The loop stays free while tasks run.
            ticks = 0

            async def tick():
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.01)

            ticker = asyncio.create_task(tick())
            assert await client.run(nap, 0.5) == 0.5
            ticker.cancel()
            assert ticks >= 10

    asyncio.run(main())


def test_exceptions_and_timeouts(stack):
    async def main():
        async with faas.AsyncClient(stack.url) as client:
            with pytest.raises(Oops) as info:
                await client.run(fail, "async")
            assert "Remote traceback" in "\n".join(info.value.__notes__)
            with pytest.raises(faas.TaskTimeout):
                await client.options(timeout_ms=300).run(nap, 5)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(await client.submit(nap, 1), timeout=0.05)

    asyncio.run(main())
