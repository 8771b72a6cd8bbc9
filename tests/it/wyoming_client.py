"""A Wyoming client built on the PyPI `wyoming` package (1.10.2), driven by tests/it/wyoming.rs.

    wyoming_client.py describe PORT
        prints {"type": "info", "words": [...], "phrases": [...], "installed": bool}, the info
        parsed by Info.from_event.
    wyoming_client.py MODE PORT AUDIO.raw NAME,NAME|- [SPEED [RATExWIDTHxCHANNELS]]
        streams 16 kHz s16le mono AUDIO (paced SPEED times real time, default 1; sent as another
        format if asked, e.g. 48000x4x2) and prints every event received as
        {"type", "data", "sent_ms"} (sent_ms: audio sent when it arrived).
        MODE: "ha"        as Home Assistant: detect, audio-start, 10 ms chunks, no audio-stop;
                          closes on the first detection;
              "stop"      as "ha", then audio-stop, and waits for the answer;
              "satellite" as wyoming-satellite 1.0.0: detect, no audio-start, 1024-sample chunks;
                          after each detection sends detect again on the same connection.
"""

import array
import asyncio
import json
import sys

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info
from wyoming.wake import Detect, Detection

RATE = 16000


def emit(obj):
    print(json.dumps(obj), flush=True)


async def describe(port):
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        event = await asyncio.wait_for(client.read_event(), 10)
        info = Info.from_event(event)
        wake = info.wake[0]
        emit(
            {
                "type": "info",
                "program": wake.name,
                "installed": wake.installed and all(m.installed for m in wake.models),
                "words": [m.name for m in wake.models],
                "phrases": [m.phrase for m in wake.models],
                "languages": [m.languages for m in wake.models],
            }
        )


def convert(pcm, rate, width, channels):
    """16 kHz s16le mono to `rate` (a multiple of 16 kHz, each sample repeated), `width`
    bytes, `channels` copies."""
    samples = array.array("h")
    samples.frombytes(pcm)
    out = bytearray()
    for s in samples:
        v = s << (8 * (width - 2)) if width >= 2 else s >> 8
        out += v.to_bytes(width, "little", signed=True) * channels * (rate // RATE)
    return bytes(out)


async def stream(mode, port, audio, names, speed, fmt):
    rate, width, channels = fmt
    chunk_samples = 1024 if mode == "satellite" else rate // 100
    pcm = convert(open(audio, "rb").read(), rate, width, channels)
    frame = width * channels
    step = chunk_samples * frame
    sent = {"ms": 0}
    done = asyncio.Event()
    async with AsyncTcpClient("127.0.0.1", port) as client:

        async def reader():
            while True:
                event = await client.read_event()
                if event is None:
                    emit({"type": "closed", "data": {}, "sent_ms": sent["ms"]})
                    break
                emit({"type": event.type, "data": event.data, "sent_ms": sent["ms"]})
                if Detection.is_type(event.type):
                    if mode == "ha":
                        break
                    if mode == "satellite":
                        await client.write_event(Detect(names=names).event())
                elif mode == "stop" and event.type in ("not-detected", "error"):
                    break
            done.set()

        task = asyncio.create_task(reader())
        await client.write_event(Detect(names=names).event())
        if mode != "satellite":
            await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        for i in range(0, len(pcm), step):
            if done.is_set():
                break
            chunk = AudioChunk(rate=rate, width=width, channels=channels,
                               audio=pcm[i : i + step], timestamp=sent["ms"])
            await client.write_event(chunk.event())
            sent["ms"] = (i + step) * 1000 // (frame * rate)
            await asyncio.sleep(chunk_samples / rate / speed)
        if mode == "stop" and not done.is_set():
            await client.write_event(AudioStop().event())
        if mode == "satellite":
            await asyncio.sleep(2)
            task.cancel()
            return
        try:
            await asyncio.wait_for(task, 10)
        except asyncio.TimeoutError:
            emit({"type": "timeout", "data": {}, "sent_ms": sent["ms"]})


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "describe":
        asyncio.run(describe(port))
        return
    names = None if sys.argv[4] == "-" else sys.argv[4].split(",")
    speed = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
    fmt = tuple(int(v) for v in sys.argv[6].split("x")) if len(sys.argv) > 6 else (RATE, 2, 1)
    asyncio.run(stream(mode, port, sys.argv[3], names, speed, fmt))


if __name__ == "__main__":
    main()
