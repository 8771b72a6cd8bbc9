"""A `_wyoming._tcp.local.` browser built on the PyPI `zeroconf` package (0.88.0, the version Home
Assistant and wyoming-satellite 1.0.0 pin), driven by tests/it/zeroconf.rs.

    zeroconf_browse.py SECONDS [PORT]
        browses the loopback interface only for up to SECONDS and prints one JSON line per
        resolved service: {"name", "type", "server", "port", "addresses", "properties",
        "complete"}. With PORT, it stops as soon as a service on PORT is resolved.
        Exits 1, with a message on stderr, if nothing (with PORT: nothing on PORT) was resolved
        in time.

It finds and resolves services as Home Assistant's zeroconf integration does: an
AsyncServiceBrowser whose handler, on each added or updated service, makes an AsyncServiceInfo,
loads it from the cache or asks the network (async_request, 3 s), and keeps it only if it has an
address and a server (HA's info_from_service). "complete" is async_request's answer: the TXT
record came too.
"""

import asyncio
import json
import sys

from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

SERVICE = "_wyoming._tcp.local."


def note(msg):
    print(f"zeroconf_browse: {msg}", file=sys.stderr, flush=True)


async def main(seconds, want_port):
    azc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    zc = azc.zeroconf
    resolved = {}
    done = asyncio.Event()
    tasks = set()

    async def lookup(service_type, name):
        info = AsyncServiceInfo(service_type, name)
        complete = info.load_from_cache(zc) or await info.async_request(zc, 3000)
        addresses = info.parsed_addresses(IPVersion.All)
        if not addresses or info.server is None or not info.port:
            note(f"{name}: seen but not resolved (addresses {addresses}, server {info.server})")
            return
        entry = {
            "name": info.name,
            "type": info.type,
            "server": info.server,
            "port": info.port,
            "addresses": addresses,
            "properties": {
                k.decode(errors="replace"): None if v is None else v.decode(errors="replace")
                for k, v in info.properties.items()
            },
            "complete": bool(complete),
        }
        if resolved.get(name) != entry:
            resolved[name] = entry
            print(json.dumps(entry), flush=True)
        if want_port is not None and info.port == want_port:
            done.set()

    def on_change(zeroconf, service_type, name, state_change):
        if state_change is ServiceStateChange.Removed:
            return
        task = asyncio.ensure_future(lookup(service_type, name))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    browser = AsyncServiceBrowser(zc, [SERVICE], handlers=[on_change])
    try:
        await asyncio.wait_for(done.wait(), seconds)
    except asyncio.TimeoutError:
        pass
    finally:
        await browser.async_cancel()
        for task in list(tasks):
            task.cancel()
        await azc.async_close()

    if want_port is not None:
        if not any(e["port"] == want_port for e in resolved.values()):
            seen = sorted(e["port"] for e in resolved.values())
            note(f"no {SERVICE} service on port {want_port} resolved within {seconds} s "
                 f"(resolved ports: {seen})")
            return 1
    elif not resolved:
        note(f"no {SERVICE} service resolved within {seconds} s")
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    port = int(sys.argv[2]) if len(sys.argv) == 3 else None
    sys.exit(asyncio.run(main(float(sys.argv[1]), port)))
