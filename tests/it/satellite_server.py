"""Home Assistant's side of a wyoming-satellite, built on the PyPI `wyoming` package (1.10.2),
driven by tests/it/satellite.rs.

    satellite_server.py PORT GO_FILE AGAIN_FILE PIPELINES

Connects to the satellite's --uri on 127.0.0.1:PORT (retrying while it starts), sends
`run-satellite` as Home Assistant does, then creates GO_FILE (the test's microphone starts
when it exists). Each `run-pipeline` the satellite sends (it sends one after each wake-word
detection) is answered with a `transcript`, which ends that pipeline: the satellite then sends
`detect` to its wake service again and goes back to listening; AGAIN_FILE is created half a
second later (the microphone's second part starts). Prints every event other than audio as
{"type", "data"} and exits after PIPELINES run-pipeline events, or after 60 s.
"""

import asyncio
import json
import pathlib
import sys
import time

from wyoming.asr import Transcript
from wyoming.client import AsyncTcpClient
from wyoming.satellite import RunSatellite


def emit(obj):
    print(json.dumps(obj), flush=True)


async def connect(port):
    start = time.monotonic()
    while True:
        client = AsyncTcpClient("127.0.0.1", port)
        try:
            await client.connect()
            return client
        except OSError:
            if time.monotonic() - start > 30:
                raise
            await asyncio.sleep(0.2)


async def run(port, go_file, again_file, pipelines):
    client = await connect(port)
    await client.write_event(RunSatellite().event())
    await asyncio.sleep(0.5)
    pathlib.Path(go_file).touch()
    seen = 0
    while seen < pipelines:
        event = await client.read_event()
        if event is None:
            emit({"type": "closed", "data": {}})
            break
        if event.type == "audio-chunk":
            continue
        emit({"type": event.type, "data": event.data})
        if event.type == "run-pipeline":
            seen += 1
            if seen < pipelines:
                await client.write_event(Transcript(text="turn on the lights").event())
                await asyncio.sleep(0.5)
                pathlib.Path(again_file).touch()
    await client.disconnect()


def main():
    port, go_file, again_file, pipelines = sys.argv[1:5]
    try:
        asyncio.run(asyncio.wait_for(run(int(port), go_file, again_file, int(pipelines)), 60))
    except asyncio.TimeoutError:
        emit({"type": "timeout", "data": {}})


if __name__ == "__main__":
    main()
